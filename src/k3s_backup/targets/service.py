"""A directory on a backup host behind `k3s-backup serve` (an SSH target with `mode` "append-only"
or "prune"): the protocol of service/ over one SSH exec channel per run (ssh/session.py).

The node's key there runs nothing but the service (a forced command), so this backend never
asks for SFTP or a shell. The host stores and hashes each copy itself; this side checks that
what the host reports is what it sent, and turns every refusal into a TargetError.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import paramiko

from k3s_backup.config import SshTargetConfig
from k3s_backup.errors import TargetError, TargetUnreachable
from k3s_backup.plumbing.streams import Readable, Writable, over_limit
from k3s_backup.service.client import Client, ServiceRefused
from k3s_backup.service.protocol import READ_ONLY, ProtocolError
from k3s_backup.ssh.errors import CONNECTION_ERRORS
from k3s_backup.ssh.session import SshSession
from k3s_backup.targets.base import Digest, Outgoing, StoredObject, Target, Verified

# What the node asks to run; the forced command runs instead, whatever is asked. On a key
# without one this is no command at all, so the hello never comes and we say what to do.
SERVICE_COMMAND = ["k3s-backup-service"]
PROBE_LIMIT = 1 << 16
HANDSHAKE_ERRORS: tuple[type[Exception], ...] = (ProtocolError, ServiceRefused, *CONNECTION_ERRORS)
HOST_SETUP_HINT = (
    "on the backup host, run the `k3s-backup host-setup` line `k3s-backup setup` prints"
)


class ServiceTarget(Target):
    kind = "ssh"

    def __init__(self, config: SshTargetConfig) -> None:
        self.name = config.name
        self.config = config
        self.session = SshSession.from_config(config.name, config)
        self._channel: paramiko.Channel | None = None
        self._client: Client | None = None

    @property
    def location(self) -> str:
        c = self.config
        return f"{c.user}@{c.host}:{c.port}:{c.path} (k3s-backup serve, {c.mode})"

    @property
    def mode(self) -> str:
        """What the host lets this key do ("append-only", "prune", "read-only")."""
        return str(self._connected().hello.get("mode"))

    # -- the channel ------------------------------------------------------------------------

    def _connected(self) -> Client:
        if self._client is not None:
            return self._client
        try:
            channel = self.session.open_channel(SERVICE_COMMAND, combine_stderr=False)
        except CONNECTION_ERRORS as exc:
            raise self.session.failure("start the service", "", exc) from None
        client = Client(channel.makefile("rb"), channel.makefile_stdin("wb"))
        try:
            hello = client.handshake()
        except ServiceRefused as exc:
            channel.close()
            if exc.code == "no-root":
                raise TargetError(
                    f"{self.name}: {exc}; check `path` in the config, and the --dir that"
                    " `k3s-backup host-setup` was given there"
                ) from None
            raise TargetError(f"{self.name}: the backup host's service refused: {exc}") from None
        except HANDSHAKE_ERRORS as exc:
            said = _stderr(channel)
            channel.close()
            raise TargetError(
                f"{self.name}: {self.config.user}@{self.config.host} did not start the"
                f" k3s-backup service ({exc}{said}); {HOST_SETUP_HINT}"
            ) from None
        if hello.get("root") != str(self.config.path):
            channel.close()
            raise TargetError(
                f"{self.name}: the backup host serves {hello.get('root')}, the config says"
                f" path = {str(self.config.path)!r}; make them the same"
            )
        self._channel, self._client = channel, client
        return client

    # -- probes for setup and doctor (targets/base.py Probes) -------------------------------

    def connect(self) -> None:
        self._connected()

    def directory_exists(self) -> bool:
        """The service runs in it (it refuses to start without it)."""
        self._connected()
        return True

    def ensure_directory(self) -> None:
        """host-setup makes the directory on the host; the node cannot, and need not."""
        self._connected()

    def check_writable(self) -> None:
        if self.mode == READ_ONLY:
            raise TargetError(
                f"{self.name}: this key may only read on {self.config.host} (a restore key);"
                f" run `k3s-backup host-setup ... --mode {self.config.mode}` there for it"
            )

    def free_space(self) -> int | None:
        free = self._connected().hello.get("free")
        return free if isinstance(free, int) and not isinstance(free, bool) else None

    def opens_shell(self) -> bool:
        """Whether the key runs what it is asked to (`echo` with a random word) instead of the
        service: true on a key line without the forced command. For doctor."""
        token = secrets.token_hex(8)
        try:
            channel = self.session.open_channel(["echo", token], timeout=30)
            with channel:
                channel.shutdown_write()  # the service, if it runs, sees its end and exits
                output = channel.makefile("rb").read(PROBE_LIMIT)
        except CONNECTION_ERRORS as exc:
            raise self.session.failure("probe", "the key's restriction", exc) from None
        return token.encode() in output

    def close(self) -> None:
        if self._channel is not None:
            with contextlib.suppress(*CONNECTION_ERRORS):
                self._channel.shutdown_write()  # the service's end of stream: it exits
                self._channel.close()
        self._channel = self._client = None
        self.session.close()

    def _call(self, action: str, name: str, work: Any) -> Any:
        """Run `work(client)`; every failure a TargetError naming the action and the name.
        A broken stream cannot be trusted to stay in step: the channel is dropped."""
        client = self._connected()
        try:
            return work(client)
        except ServiceRefused as exc:
            raise TargetError(f"{self.name}: cannot {action} {name}: {exc}") from None
        except ProtocolError as exc:  # a stream cut short is the link's failure, if it died
            error = TargetUnreachable if not self.session.alive() else TargetError
            self.close()
            raise error(f"{self.name}: cannot {action} {name}: {exc}") from None
        except CONNECTION_ERRORS as exc:
            failure = self.session.failure(action, name, exc)
            self.close()
            raise failure from None

    # -- the interface ----------------------------------------------------------------------

    def list(self) -> list[StoredObject]:
        entries = self._call("list", str(self.config.path), lambda c: c.list())
        return [StoredObject(name, size) for name, size in entries]

    def stat(self, name: str) -> StoredObject | None:
        size = self._call("stat", name, lambda c: c.stat(name))
        return None if size is None else StoredObject(name, size)

    def sha256(self, name: str) -> str:
        digest: str = self._call("hash", name, lambda c: c.sha256(name))
        return digest

    def delete(self, name: str) -> None:
        self._call("delete", name, lambda c: c.delete(name))

    def get(self, name: str, dest: Writable, limit: int) -> None:
        def download(client: Client) -> None:
            try:
                client.get(name, dest.write, limit)
            except ServiceRefused as exc:
                if exc.code == "too-large":
                    raise over_limit(
                        f"{self.name}: {name}", limit, "the most it may hold"
                    ) from None
                raise

        self._call("download", name, download)

    def put(self, name: str, source: Readable, sha256: Digest = None) -> Verified:
        outgoing = Outgoing(source, sha256)
        reply = self._call("upload", name, lambda c: c.put(name, outgoing.read, outgoing.expected))
        verified = outgoing.verified()
        stored = (reply.get("size"), reply.get("sha256"))
        if stored != (verified.size, verified.sha256):
            raise TargetError(
                f"{self.name}: copy of {name} does not verify on {self.config.host}"
                f" ({stored[0]} bytes, SHA-256 {stored[1]} stored; {verified.size} bytes,"
                f" {verified.sha256} sent)"
            )
        return verified


def _stderr(channel: paramiko.Channel) -> str:
    """ "; it said: ..." with the first line the host wrote on stderr (a shell's "not found",
    a Python that cannot import k3s_backup), when it wrote one."""
    try:
        data = channel.recv_stderr(4096) if channel.recv_stderr_ready() else b""
    except CONNECTION_ERRORS:
        return ""
    lines = [line for line in data.decode(errors="replace").splitlines() if line.strip()]
    return f"; it said: {lines[-1].strip()[:200]}" if lines else ""
