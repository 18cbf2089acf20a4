"""`k3s-backup extract`: objects of a snapshot as manifests for `kubectl apply -f`, without
rolling the cluster back.

The snapshot is resolved and verified as for inspect (catalogue/opening.py) and read at its
latest revision: the selected live keys are indexed on disk in apply order
(formats/live_index.py), then each value is read, decrypted with K3s's encryption config
(formats/encryption_at_rest.py), decoded (formats/k8s_objects.py: protobuf from the API's field
numbers, JSON as stored), stripped of what the server sets (kube/manifests.py) and written
(kube/sinks.py), one at a time: memory stays flat in the snapshot's size. An object that cannot
be read completely is named, never half-written."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import click

from k3s_backup.catalogue import bundle
from k3s_backup.catalogue.opening import ConfigLoader, SnapshotAccess
from k3s_backup.cli_options import Context, copy_access_options, epilog, pass_context
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ConfigError, ExitCode
from k3s_backup.formats import encryption_at_rest, k8s_objects, kubernetes
from k3s_backup.formats.encryption_at_rest import DecryptionError, KeyRingLoader
from k3s_backup.formats.etcd_db import EtcdDb
from k3s_backup.formats.live_index import LiveIndex, Ranker
from k3s_backup.kube import manifests
from k3s_backup.kube.manifests import Manifest
from k3s_backup.kube.sinks import ListSink, Sink, sink_for
from k3s_backup.sources.live import live_snapshot

# Not objects one applies back: the server recreates them, or they are not objects at all.
NOT_EXTRACTED = {
    "events",
    "events.events.k8s.io",
    "masterleases",
    "ranges",
    "minions",
    "leases",
    "endpointslices.discovery.k8s.io",
    "services/endpoints",
    "controllerrevisions",
}
LIVE = "live"
SELECTED_TABLE, OTHER_TABLE = "selected", "other"  # of the LiveIndex


@dataclass(frozen=True)
class Selection:
    namespace: str | None = None
    resource: str | None = None
    name: str | None = None

    def matches(self, key: kubernetes.ObjectKey) -> bool:
        if self.resource is None and key.resource in NOT_EXTRACTED:
            return False
        if self.resource is not None and key.resource != self.resource:
            return False
        if self.name is not None and key.name != self.name:
            return False
        if self.namespace is None:
            return True
        is_its_namespace = (key.resource, key.namespace, key.name) == (
            "namespaces",
            None,
            self.namespace,
        )
        return key.namespace == self.namespace or is_its_namespace


@dataclass(frozen=True)
class Options:
    output: str = "yaml"  # yaml | json
    out_dir: Path | None = None
    keep_owner_references: bool = False
    raw: bool = False
    encryption_config: Path | None = None
    deleted_since: str | None = None
    apply: bool = False
    overwrite: bool = False


@dataclass(frozen=True)
class Refused:
    """An object that could not be extracted, and why."""

    key: str
    reason: str
    undecoded: bool = False  # read, but not decodable: --raw can write its bytes


@dataclass(frozen=True)
class Extracting:
    """What every object's extraction shares."""

    options: Options
    keys: KeyRingLoader
    sink: Sink


@dataclass
class Outcome:
    """What one pass wrote and what it could not (kept small: manifests go to the sink)."""

    selected: int = 0
    written: int = 0
    refused: list[Refused] = field(default_factory=list)
    owned: list[str] = field(default_factory=list)  # skipped: their controller recreates them
    raw_written: int = 0


def _parsed(key: bytes) -> kubernetes.ObjectKey | None:
    return kubernetes.parse_key(key.decode(errors="backslashreplace"))


def _ranker(selection: Selection) -> Ranker:
    """A selected key's place in apply order (its kind's rank); None for the others."""

    def rank(key: bytes) -> int | None:
        parsed = _parsed(key)
        if parsed is None or not selection.matches(parsed):
            return None
        return manifests.apply_rank(parsed.resource, parsed.namespace, parsed.name)[0]

    return rank


def _extract_one(
    db: EtcdDb, key: bytes, revision_key: bytes, context: Extracting, done: Outcome
) -> None:
    done.selected += 1
    shown = key.decode(errors="backslashreplace")
    parsed = _parsed(key)
    assert parsed is not None  # the ranker keeps only registry keys
    options, sink = context.options, context.sink
    try:
        stored = db.value_at(revision_key).value
        plain = encryption_at_rest.decrypt_stored(stored, key, context.keys)
    except DecryptionError as exc:
        done.refused.append(Refused(shown, str(exc)))
        return
    try:
        body = k8s_objects.decode_stored(plain)
    except ValueError as exc:
        done.refused.append(Refused(shown, str(exc), undecoded=True))
        if options.raw and (problem := sink.add_raw(parsed, plain)) is None:
            done.raw_written += 1
        return
    controller = manifests.controller_of(body)
    if controller and not options.keep_owner_references:
        done.owned.append(f"{shown} (owned by {controller}, which recreates it)")
        return
    body = manifests.strip_server_fields(body, options.keep_owner_references)
    problem = sink.add(Manifest(parsed.resource, parsed.namespace, parsed.name, body))
    if problem is None:
        done.written += 1
    else:
        done.refused.append(Refused(shown, problem))


def _locate_config(load_config: ConfigLoader) -> Callable[[], Path]:
    """Where K3s keeps its encryption config, from our config's data_dir."""

    def locate() -> Path:
        try:
            data_dir = load_config().k3s.data_dir
        except ConfigError as exc:
            raise ConfigError(f"no encryption config: {exc}") from None
        return bundle.encryption_config_path(data_dir)

    return locate


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(f"--out {out_dir}: not an empty directory; give a new one")


@contextmanager
def _opened(name: str, access: SnapshotAccess) -> Iterator[tuple[str, EtcdDb]]:
    with access.open(name) as copy, EtcdDb(copy.path) as db:
        yield copy.name, db


@contextmanager
def _other(options: Options, access: SnapshotAccess) -> Iterator[EtcdDb]:
    """The database --deleted-since compares with: a snapshot taken now for `live`."""
    assert options.deleted_since is not None
    if options.deleted_since != LIVE:
        with _opened(options.deleted_since, access) as (_shown, db):
            yield db
        return
    load_config, env = access.load_config, access.env

    def warn(text: str) -> None:
        env.stderr.write(f"warning: {text}\n")

    env.stderr.write("Taking a live snapshot to compare with ...\n")
    with live_snapshot(load_config(), env.environ, env.now(), warn) as path, EtcdDb(path) as db:
        yield db


def _report(done: Outcome, env: Environment, options: Options) -> None:
    for owned in done.owned:
        env.stderr.write(f"skipped: {owned}; --keep-owner-references extracts it\n")
    for item in done.refused:
        env.stderr.write(f"not extracted: {item.key}: {item.reason}\n")
    if done.raw_written:
        env.stderr.write(
            f"{done.raw_written} undecodable values written as stored (*.raw) in --out\n"
        )
    elif any(item.undecoded for item in done.refused) and not options.raw:
        env.stderr.write("(--raw --out DIR writes the stored bytes of what is not decoded)\n")


Runner = Callable[[list[str], str], subprocess.CompletedProcess[str]]


def extract(
    snapshot: str,
    selection: Selection,
    options: Options,
    access: SnapshotAccess,
    run_kubectl: Runner | None = None,
) -> ExitCode:
    load_config, env = access.load_config, access.env
    if options.out_dir is not None:
        _check_out_dir(options.out_dir)
    keys = KeyRingLoader(options.encryption_config, _locate_config(load_config))
    sink = sink_for(options.output, options.out_dir, options.apply, env)
    context = Extracting(options, keys, sink)
    registry = kubernetes.REGISTRY_PREFIX.encode()
    with ExitStack() as stack:
        index = stack.enter_context(LiveIndex())  # on disk: memory flat in the snapshot's size
        without = None
        if options.deleted_since is not None:
            with _other(options, access) as other:
                if not index.load(OTHER_TABLE, other, registry):
                    raise BackupError(f"{options.deleted_since} holds no Kubernetes objects")
            without = OTHER_TABLE
        shown, db = stack.enter_context(_opened(snapshot, access))
        index.load(SELECTED_TABLE, db, registry, _ranker(selection))
        done = Outcome()
        for key, revision_key in index.ordered(SELECTED_TABLE, without):
            _extract_one(db, key, revision_key, context, done)
        sink.close()
    if not done.selected:
        env.stderr.write(f"error: no object in {shown} matches the selection\n")
        return ExitCode.FAILED
    _report(done, env, options)
    if isinstance(sink, ListSink):
        return _apply(sink.manifests, done, options, load_config, env, run_kubectl)
    if options.out_dir is not None:
        env.stderr.write(f"{done.written} objects written under {options.out_dir}\n")
    if not done.refused and done.written:
        return ExitCode.OK
    if not done.written and not done.refused:
        env.stderr.write(f"error: nothing extracted from {shown}: every selected object skipped\n")
    return ExitCode.PARTIAL if done.written else ExitCode.FAILED


def _apply(
    items: list[Manifest],
    done: Outcome,
    options: Options,
    load_config: ConfigLoader,
    env: Environment,
    run_kubectl: Runner | None,
) -> ExitCode:
    if done.refused:
        env.stderr.write("error: nothing applied: not every selected object was extracted\n")
        return ExitCode.FAILED
    if not items:
        env.stderr.write("error: nothing to apply: every selected object skipped\n")
        return ExitCode.FAILED
    from k3s_backup.kube.apply import apply_manifests

    return apply_manifests(items, options.overwrite, load_config, env, run_kubectl)


@click.command("extract", epilog=epilog("extract"))
@click.argument("snapshot")
@click.option("--namespace", "-n", metavar="NS", help="Objects in NS, the Namespace itself first.")
@click.option(
    "--resource",
    metavar="R",
    help="Objects of R, named as inspect does (secrets, widgets.example.com).",
)
@click.option("--name", metavar="N", help="Objects named N.")
@click.option(
    "-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="One 0600 file per object under DIR (new or empty): <resource>/<namespace>/<name>.yaml.",
)
@click.option(
    "--keep-owner-references",
    is_flag=True,
    help="Keep ownerReferences (removed by default: an object whose owner is gone would be"
    " garbage-collected) and extract objects a controller owns.",
)
@click.option(
    "--raw", is_flag=True, help="With --out: write objects that cannot be decoded as stored (.raw)."
)
@click.option(
    "--encryption-config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="K3s's encryption config for Secrets encrypted at rest"
    " [default: <data_dir>/server/cred/encryption-config.json].",
)
@click.option(
    "--deleted-since",
    metavar="OTHER",
    help="Only objects present in SNAPSHOT but absent from snapshot OTHER (`live`: a snapshot"
    " taken now, removed afterwards).",
)
@click.option(
    "--apply",
    "apply_live",
    is_flag=True,
    help="Apply with `k3s kubectl apply` after a server-side dry run; reports each object.",
)
@click.option("--overwrite", is_flag=True, help="With --apply: replace objects that exist live.")
@copy_access_options
@pass_context
def command(
    ctx: Context,
    snapshot: str,
    namespace: str | None,
    resource: str | None,
    name: str | None,
    output: str,
    out_dir: Path | None,
    keep_owner_references: bool,
    raw: bool,
    encryption_config: Path | None,
    deleted_since: str | None,
    apply_live: bool,
    overwrite: bool,
    identity: Path | None,
    allow_unauthenticated: bool,
) -> int:
    """Objects of a snapshot as manifests for `kubectl apply -f`, server fields removed.

    SNAPSHOT is as for inspect. Selection options combine; without any, every object.
    """
    if raw and out_dir is None:
        raise click.UsageError("--raw needs --out DIR (stored bytes are not YAML)")
    if overwrite and not apply_live:
        raise click.UsageError("--overwrite goes with --apply")
    if apply_live and out_dir is not None:
        raise click.UsageError("--apply and --out cannot be combined")
    options = Options(
        output=output,
        out_dir=out_dir,
        keep_owner_references=keep_owner_references,
        raw=raw,
        encryption_config=encryption_config,
        deleted_since=deleted_since,
        apply=apply_live,
        overwrite=overwrite,
    )
    selection = Selection(namespace, resource, name)
    access = SnapshotAccess(ctx.config, ctx.env, identity, allow_unauthenticated)
    return extract(snapshot, selection, options, access)
