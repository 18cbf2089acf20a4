"""An etcd that requires TLS client certificates, with a CA and certificates made on the spot.

It also listens on a plain loopback URL (`endpoint`) so the test helpers (put, get, health) keep
working; the product under test is pointed at `tls_endpoint`, where a client certificate signed by
the CA is required.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from k3s_backup.lab.etcd import EtcdServer
from k3s_backup.plumbing.loopback import free_port

_KeyType = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path


def _write_key(key: _KeyType, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class CertificateAuthority:
    def __init__(self, directory: Path, name: str = "test-etcd-ca") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = directory / f"{name}.crt"
        self.cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, server: bool) -> CertFiles:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
        certificate = builder.sign(self.key, hashes.SHA256())
        files = CertFiles(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        files.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(key, files.key)
        return files


class TlsEtcdServer(EtcdServer):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.ca = CertificateAuthority(workdir / "pki")
        self.server_cert = self.ca.issue("etcd-server", server=True)
        self.client_cert = self.ca.issue("etcd-client", server=False)
        self.tls_port = free_port()

    @property
    def tls_endpoint(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    def command(self) -> list[str]:
        command = [
            arg
            for arg in super().command()
            if not arg.startswith(("--listen-client-urls=", "--advertise-client-urls="))
        ]
        return [
            *command,
            f"--listen-client-urls={self.tls_endpoint},{self.endpoint}",
            f"--advertise-client-urls={self.tls_endpoint}",
            "--client-cert-auth",
            f"--trusted-ca-file={self.ca.cert_path}",
            f"--cert-file={self.server_cert.cert}",
            f"--key-file={self.server_cert.key}",
        ]
