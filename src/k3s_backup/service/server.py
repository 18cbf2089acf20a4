"""`k3s-backup serve`: the backup host's side, run by sshd as the forced command of the node's
key (docs/protocol.md). It answers on stdin/stdout, is confined to one directory and one
cluster's names, and in append-only mode deletes nothing.

What the node says is never taken for fact: the server hashes what it writes and publishes only
bytes that hash to what the node meant to send; it refuses names that are not ours, and every
refusal is an error reply (and a line in the host's syslog), never a traceback.
"""

from __future__ import annotations

import contextlib
import syslog
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k3s_backup.policy import naming
from k3s_backup.policy.retention import GfsRules
from k3s_backup.service import hostplan, protocol
from k3s_backup.service.protocol import ProtocolError
from k3s_backup.service.store import Entry, Store, StoreError
from k3s_backup.targets.base import final_of_temp

FUTURE_SLACK = 24 * 3600  # a copy dated further ahead than this is refused (see _check_date)
RESERVE = 64 << 20  # free space an upload must leave on the backup host (1 % on small disks)


@dataclass(frozen=True)
class Settings:
    root: Path
    cluster: str
    mode: str
    rules: GfsRules  # the host's retention: what a delete in prune mode may remove
    max_size: int  # the largest copy accepted
    now: Callable[[], float] = time.time
    protect_days: int = 0  # a copy received more recently is never deleted (prune mode)
    max_per_day: int = 0  # new copies accepted per 24 hours, 0: no limit


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _log(message: str) -> None:
    with contextlib.suppress(OSError):
        syslog.syslog(syslog.LOG_WARNING, message)


class Server:
    def __init__(
        self, settings: Settings, store: Store, rx: protocol.Reader, tx: protocol.Writer
    ) -> None:
        self.settings = settings
        self.store = store
        self.rx = rx
        self.tx = tx

    # -- the loop --------------------------------------------------------------------------

    def serve(self) -> None:
        """Answer requests until the node closes the stream. ProtocolError when it breaks
        the framing (the caller replies once more and exits)."""
        free, _total = self.store.free()
        hello = protocol.hello(self.settings.mode, str(self.settings.root), free)
        protocol.write_header(self.tx, hello)
        greeting = protocol.read_header(self.rx, protocol.MAX_REQUEST)
        if greeting is None:
            return
        if greeting.get("version") != protocol.VERSION:
            raise ProtocolError(
                f"the node speaks version {greeting.get('version')!r}, this backup host"
                f" version {protocol.VERSION}: install the same k3s-backup on both"
            )
        while (request := protocol.read_header(self.rx, protocol.MAX_REQUEST)) is not None:
            self.answer(request)

    def answer(self, request: dict[str, Any]) -> None:
        op = request.get("op")
        handler = {
            "list": self.list,
            "stat": self.stat,
            "put": self.put,
            "get": self.get,
            "sha256": self.sha256,
            "delete": self.delete,
        }.get(op if isinstance(op, str) else "")
        try:
            if handler is None:
                raise Refused("unknown-op", f"unknown operation {str(op)[:40]!r}")
            handler(request)
        except (Refused, StoreError) as exc:
            if isinstance(exc, Refused):
                _log(f"k3s-backup serve {self.settings.root}: refused {op}: {exc}")
            protocol.write_header(self.tx, protocol.error(exc.code, str(exc)))
        except OSError as exc:  # the directory itself failing (gone, unreadable)
            message = f"{op}: {exc.strerror or exc}"
            protocol.write_header(self.tx, protocol.error("io", message))

    def reply(self, **fields: Any) -> None:
        protocol.write_header(self.tx, {"ok": True, **fields})

    # -- checks ----------------------------------------------------------------------------

    def name(self, request: dict[str, Any]) -> str:
        """The request's name if it is one of ours for this cluster; never a path."""
        value = request.get("name")
        if not isinstance(value, str) or len(value) > protocol.MAX_NAME:
            raise Refused("bad-name", "a name must be a string of at most 255 characters")
        cluster = self.settings.cluster
        if naming.is_our_file(cluster, value):
            return value
        raise Refused("bad-name", f"{value[:80]!r} is not a k3s-backup file name of {cluster}")

    def writable(self, op: str) -> None:
        if self.settings.mode == protocol.READ_ONLY:
            raise Refused("read-only", f"{op}: this key may only read (a restore key)")

    def _check_date(self, name: str) -> None:
        """A copy dated far ahead of the host's clock would stay "the newest" for ever and
        keep the host's rotation from ever treating real copies as current."""
        snapshot = naming.snapshot_of_sidecar(self.settings.cluster, name) or name
        parsed = naming.parse(self.settings.cluster, snapshot)
        if parsed is not None and parsed.unix > self.settings.now() + FUTURE_SLACK:
            raise Refused("future", f"{name} is dated after the backup host's clock by over a day")

    def _check_rate(self, name: str) -> None:
        """At most `max_per_day` new copies in 24 hours, by the host's receive times: a stolen
        key's burst of forged copies fills neither the disk nor the protection window."""
        limit, cluster = self.settings.max_per_day, self.settings.cluster
        if not limit or not naming.is_ours(cluster, name) or self.store.stat(name) is not None:
            return  # a sidecar, or a retried upload of a copy already here
        since = self.settings.now() - 86400
        recent = [e for e in self.store.entries() if naming.is_ours(cluster, e.name)]
        count = len([e for e in recent if e.mtime > since])
        if count >= limit:
            raise Refused(
                "rate",
                f"{name}: this host received {count} copies of {cluster} in the last 24 hours,"
                f" the most it accepts (serve --max-per-day {limit}); if this node really backs"
                " up more often, raise it with host-setup --max-per-day",
            )

    # -- operations ------------------------------------------------------------------------

    def list(self, request: dict[str, Any]) -> None:
        # The service's own temporaries are its business (it removes them), not the node's.
        entries = [e for e in self.store.entries() if final_of_temp(e.name) is None]
        self.reply(entries=[{"name": e.name, "size": e.size} for e in entries])

    def stat(self, request: dict[str, Any]) -> None:
        entry = self.store.stat(self.name(request))
        self.reply(exists=entry is not None, size=entry.size if entry else 0)

    def sha256(self, request: dict[str, Any]) -> None:
        self.reply(sha256=self.store.sha256(self.name(request)))

    def get(self, request: dict[str, Any]) -> None:
        name = self.name(request)
        limit = protocol.integer(request, "limit")
        stream, size = self.store.open_read(name)
        with stream:
            if size > limit:
                raise Refused("too-large", f"{name} holds {size} bytes, more than {limit}")
            self.reply(size=size)
            sent = 0
            while sent < size:
                try:
                    chunk = stream.read(min(protocol.MAX_DATA_FRAME, size - sent))
                except OSError as exc:  # mid-stream no reply fits: the node sees a short one
                    _log(f"k3s-backup serve {self.settings.root}: reading {name}: {exc}")
                    break
                if not chunk:
                    break
                protocol.write_frame(self.tx, chunk)
                sent += len(chunk)
            protocol.write_frame(self.tx, b"")
        # the node checks `sent` against `size`: a file cut meanwhile is a short download
        self.tx.flush()

    def put(self, request: dict[str, Any]) -> None:
        self.writable("put")
        name = self.name(request)
        self._check_date(name)
        self._check_rate(name)
        announced = protocol.integer(request, "size", 0)
        limit = self.settings.max_size
        if announced > limit:
            raise Refused("too-large", f"{name}: {announced} bytes, more than {limit} accepted")
        free, total = self.store.free()
        reserve = min(RESERVE, total // 100)  # the host itself needs some room
        if announced + reserve > free:
            raise StoreError(
                "no-space",
                f"{name}: {announced} bytes do not fit: {free} free on the backup host, of"
                f" which {reserve} are kept free",
            )
        incoming = self.store.writer(name)
        try:
            self.reply()  # go ahead
            failure = self._receive(incoming, limit)
            trailer = protocol.read_header(self.rx, protocol.MAX_REQUEST)
            if trailer is None:
                raise ProtocolError("the stream ended before the upload's end")
            if failure is not None:
                raise failure
            if trailer.get("abort"):
                raise Refused("aborted", f"{name}: the node gave up the upload")
            claimed, received = trailer.get("sha256"), incoming.hash.hexdigest()
            if received != claimed:
                raise StoreError(
                    "mismatch",
                    f"{name} does not verify: the bytes received hash to {received},"
                    f" the node meant {str(claimed)[:64]}",
                )
            size, digest, existed = incoming.publish()
        finally:
            incoming.discard()
        self.reply(size=size, sha256=digest, existed=existed)

    def _receive(self, incoming: Any, limit: int) -> StoreError | Refused | None:
        """Write data frames until the empty one. A failure (full disk, over the limit) stops
        the writing but not the reading, so the stream stays in step for the error reply."""
        failure: StoreError | Refused | None = None
        while (chunk := protocol.read_frame(self.rx, protocol.MAX_DATA_FRAME)) != b"":
            if chunk is None:
                raise ProtocolError("the stream ended in the middle of an upload")
            if failure is not None:
                continue
            if incoming.size + len(chunk) > limit:
                failure = Refused("too-large", f"{incoming.final}: more than {limit} bytes")
                continue
            try:
                incoming.write(chunk)
            except StoreError as exc:
                failure = exc
        return failure

    def delete(self, request: dict[str, Any]) -> None:
        name = self.name(request)
        if self.settings.mode != protocol.PRUNE:
            raise Refused(
                "append-only",
                f"delete {name}: the backup host deletes nothing for the node"
                f" ({self.settings.mode}); its own rotation (serve-prune) does",
            )
        entries = self.store.entries()
        present = {e.name for e in entries}
        if name not in present:
            self.reply()
            return
        settings = self.settings
        plan = host_plan(
            self.store,
            settings.cluster,
            entries,
            settings.rules,
            settings.protect_days,
            settings.now(),
        )
        if not hostplan.removable(self.settings.cluster, name, present, plan):
            raise Refused("kept", f"delete {name}: the backup host's retention keeps it")
        self.store.delete(name)
        self.reply()


def host_plan(
    store: Store, cluster: str, entries: list[Entry], rules: GfsRules, protect_days: int, now: float
) -> hostplan.HostPlan:
    """The host's rotation plan: each copy's lineage read from its manifest's claim, its time
    the host's own (the mtime of the file the service wrote), never the name's."""

    def lineage(snapshot: str) -> str | None:
        manifest = store.read_manifest(naming.manifest_name(snapshot))
        uid = manifest.get("cluster_uid") if manifest else None
        return uid if isinstance(uid, str) else None

    times = {entry.name: entry.mtime for entry in entries}
    received = hostplan.Received(times.get, now, protect_days * 86400.0)
    return hostplan.plan(cluster, sorted(times), lineage, rules, received)


def run(settings: Settings, rx: protocol.Reader, tx: protocol.Writer) -> int:
    """The forced command's body: 0 when the node closed the stream, 1 after a refusal that
    ended the connection. Never a traceback on the wire."""
    try:
        store = Store(settings.root)
    except StoreError as exc:
        protocol.write_header(tx, protocol.error(exc.code, str(exc)))
        return 1
    try:
        Server(settings, store, rx, tx).serve()
    except ProtocolError as exc:
        _log(f"k3s-backup serve {settings.root}: protocol error: {exc}")
        with contextlib.suppress(OSError, ValueError):
            protocol.write_header(tx, protocol.error("protocol", str(exc)))
        return 1
    except (BrokenPipeError, ConnectionError):
        return 1
    except Exception as exc:  # a bug of ours: one clean reply and a log line, not a traceback
        _log(f"k3s-backup serve {settings.root}: internal error: {exc!r}")
        with contextlib.suppress(OSError, ValueError):
            protocol.write_header(tx, protocol.error("internal", f"internal error: {exc!r}"))
        return 1
    finally:
        store.close()
    return 0
