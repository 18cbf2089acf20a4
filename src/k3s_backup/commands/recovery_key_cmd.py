"""`k3s-backup recovery-key create|show|set|age-identity`: the cluster's recovery key.

`setup` creates it on the first server (or takes it on another server or a replacement node);
these commands are for installs made before it existed, for a second server, and for decrypting
a restore bundle by hand.
"""

from __future__ import annotations

import click

from k3s_backup.catalogue import recovery_key
from k3s_backup.cli_options import Context, pass_context
from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.errors import ExitCode


def create(config: Config, env: Environment) -> ExitCode:
    path = config.recovery_key_file
    if recovery_key.load(path) is not None:
        raise recovery_key.RecoveryKeyError(
            f"{path} already holds this cluster's recovery key (`k3s-backup recovery-key show`);"
            " to rotate it, move that file aside first and keep it as long as copies made with"
            " it are kept"
        )
    key = recovery_key.decode(recovery_key.generate())
    recovery_key.save(path, key)
    recovery_key.show_once(env, key, path)
    return ExitCode.OK


def _existing(config: Config) -> bytes:
    key = recovery_key.load(config.recovery_key_file)
    if key is None:
        raise recovery_key.RecoveryKeyError(
            f"no recovery key at {config.recovery_key_file}: `k3s-backup recovery-key create`"
            " (first server) or `k3s-backup recovery-key set FILE` (the cluster's key)"
        )
    return key


def show(config: Config, env: Environment) -> ExitCode:
    env.stdout.write(recovery_key.encode(_existing(config)) + "\n")
    return ExitCode.OK


def set_key(config: Config, env: Environment, given: str) -> ExitCode:
    key = recovery_key.read_given(given, env)
    recovery_key.save(config.recovery_key_file, key)
    env.stdout.write(f"Recovery key saved in {config.recovery_key_file} (0600)\n")
    return ExitCode.OK


def age_identity(config: Config, env: Environment) -> ExitCode:
    """The age identity restore bundles are encrypted to, for `age -d -i FILE BUNDLE`."""
    env.stdout.write(
        "# age identity of this cluster's restore bundles (keep it as secret as the key):\n"
        f"# age -d -i THIS_FILE <copy>.bundle.tar > bundle.tar\n"
        f"{recovery_key.age_identity_text(_existing(config))}\n"
    )
    return ExitCode.OK


@click.group("recovery-key")
def command() -> None:
    """The cluster's recovery key: it authenticates every copy and encrypts restore bundles."""


@command.command("create")
@pass_context
def _create_command(ctx: Context) -> int:
    """Create this cluster's recovery key (first server; setup does it for new installs)."""
    return create(ctx.config(), ctx.env)


@command.command("show")
@pass_context
def _show_command(ctx: Context) -> int:
    """Print the recovery key (to copy it off the node)."""
    return show(ctx.config(), ctx.env)


@command.command("set")
@click.argument("source", metavar="FILE|-")
@pass_context
def _set_command(ctx: Context, source: str) -> int:
    """Put the cluster's key in place on another server or a replacement node ('-': stdin)."""
    return set_key(ctx.config(), ctx.env, source)


@command.command("age-identity")
@pass_context
def _age_identity_command(ctx: Context) -> int:
    """Print the age identity that decrypts restore bundles by hand (`age -d -i`)."""
    return age_identity(ctx.config(), ctx.env)
