"""Snapshots straight from an etcd v3 endpoint: the Maintenance/Snapshot gRPC stream.

Works for any etcd (K3s, kubeadm, RKE2, plain etcd) without etcdctl. The stream is the bbolt
database followed by its SHA-256, the same format `etcdctl snapshot save` writes; it is streamed to
a private staging file, checked as it arrives (no second read of it), and only then given its
final name.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import grpc

from k3s_backup.errors import SnapshotError
from k3s_backup.formats import protowire
from k3s_backup.formats.etcd_snapshot import TrailerCheck, naming_file
from k3s_backup.sources.base import TakenSnapshot
from k3s_backup.sources.staging import publish, staged_file, unlink_snapshot

SNAPSHOT_METHOD = "/etcdserverpb.Maintenance/Snapshot"
BLOB_FIELD = 3  # SnapshotResponse.blob
MAX_MESSAGE = 64 << 20


@dataclass(frozen=True)
class EtcdTls:
    cacert: Path
    cert: Path
    key: Path


def _blob(message: bytes) -> bytes:
    for number, _wire, value in protowire.fields(message):
        if number == BLOB_FIELD and isinstance(value, bytes):
            return value
    return b""


class EtcdSource:
    kind = "etcd"

    def __init__(
        self,
        endpoints: list[str],
        tls: EtcdTls | None,
        snapshot_dir: Path,
        cluster: str,
        node: str,
        connect_timeout: float = 10.0,
    ) -> None:
        self.endpoints = endpoints
        self.tls = tls
        self.snapshot_dir = snapshot_dir
        self.cluster = cluster
        self.node = node
        self.connect_timeout = connect_timeout

    def _credentials(self, endpoint: str) -> grpc.ChannelCredentials | None:

        if urlsplit(endpoint).scheme == "http":
            return None
        if self.tls is None:
            raise SnapshotError(f"{endpoint} is https but no [etcd] cacert/cert/key are set")
        material = []
        for label, path in (
            ("cacert", self.tls.cacert),
            ("cert", self.tls.cert),
            ("key", self.tls.key),
        ):
            try:
                material.append(path.read_bytes())
            except OSError as exc:
                raise SnapshotError(
                    f"cannot read the etcd {label} {path}: {exc.strerror}; set [etcd] {label} to"
                    " the right file (K3s: /var/lib/rancher/k3s/server/tls/etcd/, kubeadm:"
                    " /etc/kubernetes/pki/etcd/)"
                ) from None
        return grpc.ssl_channel_credentials(
            root_certificates=material[0], private_key=material[2], certificate_chain=material[1]
        )

    def _stream_to(self, endpoint: str, path: Path) -> TrailerCheck:
        """Write the snapshot `endpoint` sends to `path`, checking it on the way."""
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        address = parts.netloc
        credentials = self._credentials(endpoint)
        options = [("grpc.max_receive_message_length", MAX_MESSAGE)]
        channel = (
            grpc.insecure_channel(address, options=options)
            if credentials is None
            else grpc.secure_channel(address, credentials, options=options)
        )
        with channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=self.connect_timeout)
            except grpc.FutureTimeoutError:
                raise SnapshotError(self._diagnose(endpoint)) from None
            call: grpc.UnaryStreamMultiCallable[None, bytes] = channel.unary_stream(
                SNAPSHOT_METHOD,
                request_serializer=lambda _request: b"",
                response_deserializer=_blob,
            )
            check = TrailerCheck()
            try:
                with path.open("wb") as out:
                    for blob in call(None):
                        out.write(blob)
                        check.update(blob)
            except grpc.RpcError as exc:
                raise SnapshotError(
                    f"etcd at {endpoint} failed the snapshot: {exc.code().name}: {exc.details()}"
                ) from None
        return check

    def _diagnose(self, endpoint: str) -> str:
        """Why a channel never became ready, from a plain TCP + TLS handshake (gRPC won't say)."""
        parts = urlsplit(endpoint)
        host, port = parts.hostname or "", parts.port or 2379
        try:
            raw = socket.create_connection((host, port), timeout=self.connect_timeout)
        except OSError as exc:
            return f"cannot reach etcd at {endpoint}: {exc.strerror or exc}"
        with raw:
            if parts.scheme == "http" or self.tls is None:
                return f"etcd at {endpoint} accepts connections but does not answer gRPC"
            return _tls_problem(raw, host, endpoint, self.tls)

    def take(self, prefix: str) -> TakenSnapshot:
        problems = []
        for endpoint in self.endpoints:
            with staged_file(self.snapshot_dir) as staged:
                try:
                    received = self._stream_to(endpoint, staged)
                    with naming_file(staged):
                        check = received.result()
                except SnapshotError as exc:
                    problems.append(str(exc))
                    continue
                path, name = publish(staged, self.snapshot_dir, self.cluster, prefix, self.node)
            skipped = "".join(f"; skipped: {problem}" for problem in problems)
            return TakenSnapshot(path, name, check, detail=f"from {endpoint}{skipped}")
        raise SnapshotError("no etcd endpoint gave a snapshot:\n  " + "\n  ".join(problems))

    def delete(self, filename: str) -> str | None:
        unlink_snapshot(self.snapshot_dir, self.cluster, filename)
        return None


def _tls_problem(raw: socket.socket, host: str, endpoint: str, tls: EtcdTls) -> str:
    context = ssl.create_default_context(cafile=str(tls.cacert))
    context.load_cert_chain(str(tls.cert), str(tls.key))
    try:
        with context.wrap_socket(raw, server_hostname=host) as conn:
            conn.settimeout(2.0)
            conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            conn.recv(1)  # a rejected client certificate surfaces here under TLS 1.3
    except ssl.SSLCertVerificationError as exc:
        return (
            f"etcd at {endpoint} presented a certificate that {tls.cacert} does not verify"
            f" ({exc.verify_message}): set [etcd] cacert to the CA that signed etcd's server"
            " certificate"
        )
    except ssl.SSLError as exc:
        return (
            f"etcd at {endpoint} refused the TLS session ({exc.reason}): check that [etcd] cert"
            f" {tls.cert} and key {tls.key} are a client certificate signed by etcd's CA"
        )
    except OSError:
        pass
    return f"etcd at {endpoint} completed TLS but did not answer gRPC in time"


def default_node_name() -> str:
    return socket.gethostname().split(".")[0] or "node"
