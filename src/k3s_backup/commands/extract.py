"""`k3s-backup extract`: objects of a snapshot as manifests for `kubectl apply -f`, without
rolling the cluster back.

The snapshot is resolved and verified as for inspect (commands/open_copy.py) and read at its
latest revision; values encrypted at rest are decrypted with K3s's encryption config
(formats/encryption_at_rest.py); JSON values are taken as stored, protobuf ones decoded from the
API's field numbers (formats/k8s_objects.py); manifests.py strips what the server sets, orders
and renders them. An object that cannot be read completely is named, never half-written.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k3s_backup import bundle, manifests
from k3s_backup.commands.open_copy import ConfigLoader, open_copy
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ConfigError, ExitCode
from k3s_backup.formats import encryption_at_rest, k8s_objects, kubernetes
from k3s_backup.formats.encryption_at_rest import DecryptionError, KeyRing
from k3s_backup.formats.etcd_db import EtcdDb, LiveKey
from k3s_backup.manifests import Manifest

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
MAX_JSON_DEPTH = 200  # the deepest CRD schemas nest a few dozen levels; YAML renders 300


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
    plain: bytes | None = None  # its stored (decrypted) bytes, for --raw


@dataclass
class Extraction:
    manifests: list[Manifest] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    raw: list[tuple[kubernetes.ObjectKey, bytes]] = field(default_factory=list)
    owned: list[str] = field(default_factory=list)  # skipped: their controller recreates them


class KeyRingLoader:
    """The encryption keys, read the first time an encrypted value needs them."""

    def __init__(self, explicit: Path | None, load_config: ConfigLoader) -> None:
        self._explicit = explicit
        self._load_config = load_config
        self._ring: KeyRing | None = None
        self._problem: str | None = None

    def ring(self) -> KeyRing:
        if self._ring is not None:
            return self._ring
        if self._problem is None:
            try:
                self._ring = encryption_at_rest.load_config(self._path())
                return self._ring
            except ConfigError as exc:
                self._problem = str(exc)
        raise DecryptionError(f"{self._problem} (give the right one with --encryption-config)")

    def _path(self) -> Path:
        if self._explicit is not None:
            return self._explicit
        try:
            data_dir = self._load_config().k3s.data_dir
        except ConfigError as exc:
            raise ConfigError(f"no encryption config: {exc}") from None
        return bundle.encryption_config_path(data_dir)


def _depth(document: Any) -> int:
    """How deeply `document` nests (iteratively: a crafted value must not exhaust the stack
    of what renders it)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        item, depth = pending.pop()
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            pending.extend((child, depth + 1) for child in children)
    return deepest


def _decode(value: bytes, key: str) -> dict[str, Any]:
    """The object a plain stored value holds; ValueError (a reason) if it cannot be read whole."""
    if value.startswith(k8s_objects.PROTOBUF_MAGIC):
        return k8s_objects.decode_object(value)
    if value.lstrip()[:1] == b"{":
        try:
            document = json.loads(value)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        except RecursionError:
            document = None
        if document is None or _depth(document) > MAX_JSON_DEPTH:
            raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if (
            isinstance(document, dict)
            and isinstance(document.get("metadata"), dict)
            and {"kind", "apiVersion"} <= set(document)
        ):
            return document
        raise ValueError("JSON without apiVersion, kind and metadata: not a Kubernetes object")
    raise ValueError("neither protobuf (k8s\\x00) nor JSON: not a Kubernetes object")


def _decrypted(stored: bytes, key: bytes, keys: KeyRingLoader) -> bytes:
    found = encryption_at_rest.sealed(stored)
    if found is None:
        return stored
    ring = None
    if found.provider in encryption_at_rest.DECRYPTABLE:
        try:
            ring = keys.ring()
        except DecryptionError as exc:
            what = f"encrypted at rest with {found.provider} key {found.key_name!r}"
            raise DecryptionError(f"{what}: {exc}") from None
    return encryption_at_rest.decrypt(stored, key, ring)


def _extract_one(
    db: EtcdDb,
    key: bytes,
    live: LiveKey,
    parsed: kubernetes.ObjectKey,
    keys: KeyRingLoader,
    options: Options,
    into: Extraction,
) -> None:
    shown = key.decode(errors="backslashreplace")
    try:
        stored = db.value_at(live.revision_key).value
        plain = _decrypted(stored, key, keys)
    except DecryptionError as exc:
        into.refused.append(Refused(shown, str(exc)))
        return
    try:
        body = _decode(plain, shown)
    except ValueError as exc:
        into.refused.append(Refused(shown, str(exc), plain))
        if options.raw:
            into.raw.append((parsed, plain))
        return
    controller = manifests.controller_of(body)
    if controller and not options.keep_owner_references:
        into.owned.append(f"{shown} (owned by {controller}, which recreates it)")
        return
    body = manifests.strip_server_fields(body, options.keep_owner_references)
    into.manifests.append(Manifest(parsed.resource, parsed.namespace, parsed.name, body))


def _selected(db: EtcdDb, selection: Selection) -> Iterator[tuple[bytes, LiveKey, Any]]:
    state = db.live(kubernetes.REGISTRY_PREFIX.encode())
    for key, live in sorted(state.keys.items()):
        parsed = kubernetes.parse_key(key.decode(errors="backslashreplace"))
        if parsed is not None and selection.matches(parsed):
            yield key, live, parsed


def _live_keys(db: EtcdDb) -> set[bytes]:
    return set(db.live(kubernetes.REGISTRY_PREFIX.encode()).keys)


def extract_from(
    db: EtcdDb, selection: Selection, options: Options, keys: KeyRingLoader, absent: set[bytes]
) -> Extraction:
    """The selected objects of `db`, but none whose key is in `absent` (--deleted-since)."""
    extraction = Extraction()
    for key, live, parsed in _selected(db, selection):
        if absent and key in absent:
            continue
        _extract_one(db, key, live, parsed, keys, options, extraction)
    extraction.manifests = manifests.in_apply_order(extraction.manifests)
    return extraction


def _write_tree(extraction: Extraction, out_dir: Path, output: str) -> list[Refused]:
    suffix = ".json" if output == "json" else ".yaml"
    unsafe: list[Refused] = []
    for manifest in extraction.manifests:
        try:
            path = out_dir / manifests.relative_path(manifest, suffix)
        except ValueError as exc:
            unsafe.append(Refused(f"{manifest.resource}/{manifest.name}", str(exc)))
            continue
        manifests.write_private(path, manifests.render_one(manifest, output).encode())
    for parsed, plain in extraction.raw:
        stub = Manifest(parsed.resource, parsed.namespace, parsed.name, {})
        try:
            path = out_dir / manifests.relative_path(stub, ".raw")
        except ValueError as exc:
            unsafe.append(Refused(f"{parsed.resource}/{parsed.name}", str(exc)))
            continue
        manifests.write_private(path, plain)
    return unsafe


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(f"--out {out_dir}: not an empty directory; give a new one")


@contextmanager
def _opened(
    name: str, load_config: ConfigLoader, env: Environment, identity: Path | None
) -> Iterator[tuple[str, EtcdDb]]:
    with open_copy(name, load_config, env, identity) as copy, EtcdDb(copy.path) as db:
        yield copy.name, db


def _report_refused(refused: list[Refused], env: Environment, options: Options) -> None:
    for item in refused:
        env.stderr.write(f"not extracted: {item.key}: {item.reason}\n")
    if refused and options.raw and options.out_dir is not None:
        raw = sum(1 for item in refused if item.plain is not None)
        if raw:
            env.stderr.write(f"{raw} undecodable values written as stored (*.raw) in --out\n")
    elif any(item.plain is not None for item in refused):
        env.stderr.write(
            "--raw --out DIR writes the stored bytes of objects that are not decoded\n"
        )


def extract(
    snapshot: str,
    selection: Selection,
    options: Options,
    load_config: ConfigLoader,
    env: Environment,
    identity: Path | None = None,
    run_kubectl: Callable[[list[str], str], subprocess.CompletedProcess[str]] | None = None,
) -> ExitCode:
    if options.out_dir is not None:
        _check_out_dir(options.out_dir)
    if options.deleted_since == LIVE:
        raise ConfigError(
            "--deleted-since live is not supported yet: take a snapshot (k3s-backup run) and"
            " give its name"
        )
    keys = KeyRingLoader(options.encryption_config, load_config)
    with ExitStack() as stack:
        absent: set[bytes] = set()
        if options.deleted_since is not None:
            _other_name, other = stack.enter_context(
                _opened(options.deleted_since, load_config, env, identity)
            )
            absent = _live_keys(other)
            if not absent:
                raise BackupError(f"{options.deleted_since} holds no Kubernetes objects")
        shown, db = stack.enter_context(_opened(snapshot, load_config, env, identity))
        extraction = extract_from(db, selection, options, keys, absent)
    return _finish(shown, extraction, options, load_config, env, run_kubectl)


def _finish(
    shown: str,
    extraction: Extraction,
    options: Options,
    load_config: ConfigLoader,
    env: Environment,
    run_kubectl: Callable[[list[str], str], subprocess.CompletedProcess[str]] | None,
) -> ExitCode:
    refused = list(extraction.refused)
    for owned in extraction.owned:
        env.stderr.write(f"skipped: {owned}; --keep-owner-references extracts it\n")
    if not extraction.manifests and not refused:
        env.stderr.write(f"error: no object in {shown} matches the selection\n")
        return ExitCode.FAILED
    if options.apply:
        _report_refused(refused, env, options)
        if refused:
            env.stderr.write("error: nothing applied: not every selected object was extracted\n")
            return ExitCode.FAILED
        from k3s_backup.kubectl_apply import apply_manifests

        return apply_manifests(
            extraction.manifests, options.overwrite, load_config, env, run_kubectl
        )
    if options.out_dir is not None:
        refused += _write_tree(extraction, options.out_dir, options.output)
        env.stderr.write(f"{len(extraction.manifests)} objects written under {options.out_dir}\n")
    elif options.output == "json":
        env.stdout.write(manifests.json_list(extraction.manifests))
    elif extraction.manifests:
        env.stdout.write(manifests.yaml_stream(extraction.manifests))
    _report_refused(refused, env, options)
    if not refused:
        return ExitCode.OK
    return ExitCode.PARTIAL if extraction.manifests else ExitCode.FAILED
