"""`k3s-backup fetch NAME --out FILE`: choose a copy, download it, verify it, decode it.

The same steps are the first half of `restore` (catalogue/lookup.py chooses the copy,
catalogue/retrieval.py downloads and verifies it); the plain file is written beside FILE first,
and takes FILE's name only once it verified.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

from k3s_backup.catalogue.lookup import ChoiceError, choose, copies_of, find_copies, load_identities
from k3s_backup.catalogue.recovery_key import Trust
from k3s_backup.catalogue.retrieval import fetch_verified, private_workdir
from k3s_backup.cli_options import FROM_OPTION, Context, copy_access_options, epilog, pass_context
from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.errors import ExitCode
from k3s_backup.report import Reporter, human_size
from k3s_backup.targets.retry import one_connection_each


def fetch(
    config: Config,
    env: Environment,
    wanted: str,
    out: Path,
    source: str | None,
    force: bool,
    identity: Path | None = None,
    allow_unauthenticated: bool = False,
) -> ExitCode:
    reporter = Reporter(env, None)
    identities = load_identities(identity)
    trust = Trust.of(config.recovery_key_file, allow_unauthenticated)
    out = out.absolute()
    if out.is_dir():
        raise ChoiceError(f"{out} is a directory; give the file to write, e.g. {out}/snapshot.db")
    if out.exists() and not force:
        raise ChoiceError(f"{out} already exists; not overwriting it (use --force to replace)")
    if not out.parent.is_dir():
        raise ChoiceError(f"{out.parent} does not exist; create it or write elsewhere")
    with one_connection_each():  # the listing, the manifest and the copy on one connection
        found, _ = find_copies(config, reporter, source)
        name = choose(found, wanted)
        workdir = private_workdir(out.parent, f".{out.name}.partial-")
        try:
            copies = copies_of(found, name)
            fetched = fetch_verified(config, env, reporter, copies, workdir, identities, trust)
            os.replace(fetched.plain, out)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    if fetched.name.suffix == ".db":
        how = "with K3s stopped, it replaces <data-dir>/server/db/state.db (drop -wal and -shm)"
    else:
        how = f"restore it with `k3s server --cluster-reset --cluster-reset-restore-path={out}`"
    reporter.info(
        f"Wrote {out} ({human_size(fetched.check.size)}): the plain snapshot, verified; {how}"
    )
    return ExitCode.OK


@click.command("fetch", epilog=epilog("fetch"))
@click.argument("name")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(path_type=Path),
    help="The plain snapshot file to write (mode 0600).",
)
@FROM_OPTION
@click.option("--force", is_flag=True, help="Replace an existing FILE.")
@copy_access_options
@pass_context
def command(
    ctx: Context,
    name: str,
    out: Path,
    source: str | None,
    force: bool,
    identity: Path | None,
    allow_unauthenticated: bool,
) -> int:
    """Download, verify and decode snapshot NAME into a plain file usable by K3s or etcdutl."""
    return fetch(ctx.config(), ctx.env, name, out, source, force, identity, allow_unauthenticated)
