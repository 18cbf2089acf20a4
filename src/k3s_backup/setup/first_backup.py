"""Setup's last changes: the cluster's recovery key in place, the first backup (not over
another cluster's copies), and what to keep off this node once set up."""

from __future__ import annotations

from k3s_backup.catalogue import recovery_key
from k3s_backup.catalogue.clusters import current_identity, new_chain_message, survey
from k3s_backup.catalogue.inventory import local_manifests, read_target_manifest, target_copies
from k3s_backup.config import Config, SshTargetConfig, TargetConfig
from k3s_backup.errors import BackupError, ExitCode
from k3s_backup.plumbing.plan import Call
from k3s_backup.policy.identity import chain_conflict
from k3s_backup.report import shown_time
from k3s_backup.setup.console import Console
from k3s_backup.setup.values import SetupStop
from k3s_backup.state import read_state
from k3s_backup.targets.factory import open_target


def ensure_recovery_key(console: Console, config: Config) -> None:
    """The cluster's recovery key in place: the one given, the one already here, or (on the
    first server of a cluster, where no authenticated copy exists yet) a new one, shown once.
    Never a new one where copies made with the cluster's key are: a second server or a
    replacement node takes the cluster's key (--recovery-key)."""
    path = config.recovery_key_file
    given = console.options.recovery_key
    if given is not None:
        key = recovery_key.read_given(given, console.env)
        if recovery_key.load(path) == key:
            console.result(f"recovery key {path}: unchanged")
            return

        def save() -> str | None:
            recovery_key.save(path, key)
            console.changed.append("recovery key")
            return None

        line = f"save the recovery key in {path} (0600)"
        console.apply(
            Call("recovery key", str(path), line, f"recovery key {path}: saved (0600)", action=save)
        )
        return
    if recovery_key.load(path) is not None:
        console.result(f"recovery key {path}: unchanged")
        return
    signed = [t.name for t in config.targets if _holds_signed_copies(config, t)]
    if signed:
        raise SetupStop(
            f"{', '.join(signed)} holds copies of {config.cluster_name} authenticated with"
            " the cluster's recovery key, and this node has none: give it with"
            " `--recovery-key FILE` (or `--recovery-key -` to type it), or keep this"
            " cluster's copies apart with another --cluster-name",
            ExitCode.USAGE,
        )

    def create() -> str:
        key = recovery_key.decode(recovery_key.generate())
        recovery_key.save(path, key)
        console.changed.append("recovery key")
        recovery_key.show_once(console.env, key, path)
        return ""  # said

    line = f"create the recovery key in {path} (0600) and show it once"
    console.apply(Call("recovery key", str(path), line, action=create))


def _holds_signed_copies(config: Config, target_config: TargetConfig) -> bool:
    """Whether a target holds a copy of this cluster name whose manifest carries a MAC (made
    with a recovery key): one connection, manifests read until one does."""
    try:
        with open_target(target_config, config.cluster_name) as target:
            return any(
                read_target_manifest(target, copy.name.filename).mac
                for copy in target_copies(target, config.cluster_name)
                if copy.has_manifest
            )
    except BackupError:
        return False


def first_backup(console: Console, config: Config) -> ExitCode:
    console.step(6, "First backup")
    last = read_state(config.state_dir).get("last_success")
    if isinstance(last, dict):
        console.result(
            f"skipped: a backup already succeeded at {shown_time(last.get('started'))}"
            " (`k3s-backup run` makes another now)"
        )
        return ExitCode.OK
    codes = [ExitCode.OK]

    def backup() -> str:
        held = copies_of_another_cluster(console, config)
        if held is not None:
            for line in held.splitlines():
                console.result(line)
            return ""
        from k3s_backup.backup.locked_run import run_backup  # the run's imports, when it runs

        console.changed.append("first backup")
        codes.append(run_backup(config, console.env, new_cluster=console.options.new_cluster))
        return f"first backup: exit {int(codes[-1])} ({codes[-1].name.lower()})"

    line = "run `k3s-backup run` and show its summary (none over another cluster's copies)"
    console.apply(Call("first backup", "", line, action=backup))
    return codes[-1]


def copies_of_another_cluster(console: Console, config: Config) -> str | None:
    """Why no first backup is taken, when the locations hold copies of this cluster name
    from another cluster and none from this node's (a node replacing a lost server)."""
    if console.options.new_cluster:
        return None
    manifests = local_manifests(config)
    current = current_identity(config, manifests)
    if current is None:  # unreadable here: the run itself checks its snapshot
        return None
    held = survey(config, manifests, console.result)
    conflicts = {
        location: copies
        for location, copies in held.items()
        if chain_conflict(current, [c.identity for c in copies])
    }
    if not conflicts:
        return None
    return "not taken: " + new_chain_message(
        config.cluster_name, current, conflicts, flag="setup"
    ).removeprefix("no backup taken: ")


def keep_safe(console: Console, config: Config, target: SshTargetConfig) -> None:
    """Once, on the set-up that changed something: what the day the disk dies needs."""
    host_key = target.known_hosts
    console.say(
        "Keep these OFF this node, for the day its disk dies (a password manager, paper):\n"
        f"  backup host: {target.user}@{target.host}:{target.port}, directory"
        f" {target.path}\n"
        f"  its host key fingerprint (in {host_key}): `ssh-keygen -lf {host_key}`\n"
        f"  the cluster name: {config.cluster_name}\n"
        "  the cluster's recovery key (`k3s-backup recovery-key show`; in"
        f" {config.recovery_key_file})\n"
        "  the age identity (private key), if a target encrypts copies\n"
        "On a new node: install k3s-backup, run `k3s-backup setup --host ...` with the same"
        " values and `--recovery-key FILE` (it finds the copies and takes no backup), then"
        " `k3s-backup restore`."
        " The server token comes back with the copy's restore bundle."
    )
