"""Values the API server encrypted at rest, decrypted with the keys of an EncryptionConfiguration.

A value is `k8s:enc:<provider>:v1:<key name>:` + payload (k8s.io/apiserver
pkg/storage/value/encrypt; the Kubernetes docs' "Encrypting Confidential Data at Rest"):
- aescbc: 16-byte IV + AES-CBC ciphertext with PKCS#7 padding;
- aesgcm: 12-byte nonce + ciphertext + 16-byte tag, the etcd key as additional data;
- secretbox: 24-byte nonce + NaCl secretbox (tag + ciphertext).
KMS values need the KMS plugin: they are named, never guessed at. K3s writes its configuration
to `<data_dir>/server/cred/encryption-config.json` (`--secrets-encryption`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from k3s_backup.errors import BackupError, ConfigError

MAX_CONFIG_SIZE = 16 << 20  # a config, or a restore bundle holding one
_PREFIX = re.compile(rb"k8s:enc:([A-Za-z0-9_-]+):(v[0-9]+):([^:]*):")
DECRYPTABLE = ("aescbc", "aesgcm", "secretbox")
KEY_SIZES = {"aescbc": (16, 24, 32), "aesgcm": (16, 24, 32), "secretbox": (32,)}


class DecryptionError(BackupError):
    """An encrypted value could not be decrypted (no key of that name, wrong key, KMS)."""


@dataclass(frozen=True)
class KeyRing:
    """The keys of one EncryptionConfiguration: (provider, key name) -> key bytes."""

    origin: str  # the file they came from, for messages
    keys: dict[tuple[str, str], bytes]


def _keys_of(provider: str, settings: Any, origin: str) -> dict[tuple[str, str], bytes]:
    keys: dict[tuple[str, str], bytes] = {}
    entries = settings.get("keys") if isinstance(settings, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        name = entry.get("name") if isinstance(entry, dict) else None
        secret = entry.get("secret") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not isinstance(secret, str):
            raise ConfigError(f"{origin}: a {provider} key without a name or secret")
        try:
            key = base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{origin}: {provider} key {name!r} is not base64") from None
        if len(key) not in KEY_SIZES[provider]:
            raise ConfigError(f"{origin}: {provider} key {name!r} has {len(key)} bytes")
        keys[(provider, name)] = key
    return keys


def parse_config(data: bytes, origin: str) -> KeyRing:
    """The aescbc, aesgcm and secretbox keys of an EncryptionConfiguration (JSON, as K3s writes
    it; YAML is a superset, so a hand-written YAML file reads too)."""
    import yaml

    try:
        document = json.loads(data) if data.lstrip()[:1] == b"{" else yaml.safe_load(data)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{origin}: not an EncryptionConfiguration: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{origin}: not an EncryptionConfiguration (nested too deeply)") from None
    if not isinstance(document, dict) or document.get("kind") != "EncryptionConfiguration":
        raise ConfigError(f"{origin}: not an EncryptionConfiguration")
    keys: dict[tuple[str, str], bytes] = {}
    resources = document.get("resources")
    for resource in resources if isinstance(resources, list) else []:
        providers = resource.get("providers") if isinstance(resource, dict) else None
        for provider in providers if isinstance(providers, list) else []:
            for name, settings in provider.items() if isinstance(provider, dict) else ():
                if name in DECRYPTABLE:
                    keys.update(_keys_of(name, settings, origin))
    return KeyRing(origin, keys)


def load_config(path: Path) -> KeyRing:
    """The keys of an encryption config file, or of the one inside a restore bundle."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_CONFIG_SIZE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the encryption config {path}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_SIZE:
        raise ConfigError(f"{path}: over {MAX_CONFIG_SIZE} bytes: not an encryption config")
    if _is_tar(data):
        return _from_bundle(data, path)
    return parse_config(data, str(path))


def _is_tar(data: bytes) -> bool:
    return data[257:262] == b"ustar"


def _from_bundle(data: bytes, path: Path) -> KeyRing:
    from k3s_backup.catalogue import bundle

    restore_bundle = bundle.from_bytes(data, str(path))
    config = restore_bundle.config_files.get(bundle.ENCRYPTION_CONFIG)
    if config is None:
        raise ConfigError(
            f"{path}: this restore bundle holds no {bundle.ENCRYPTION_CONFIG} (the node had no"
            " --secrets-encryption when it was made)"
        )
    return parse_config(config, f"{path} ({bundle.ENCRYPTION_CONFIG})")


@dataclass(frozen=True)
class Sealed:
    provider: str
    key_name: str
    payload: bytes


def sealed(value: bytes) -> Sealed | None:
    """The provider, key name and payload of an encrypted value; None if it is not one."""
    match = _PREFIX.match(value)
    if match is None:
        return None
    name = match[3].decode(errors="backslashreplace")
    return Sealed(match[1].decode(), name, value[match.end() :])


def _aescbc(key: bytes, payload: bytes) -> bytes:
    if len(payload) < 32 or len(payload) % 16:
        raise ValueError("not whole AES blocks after the IV")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(payload[:16])).decryptor()
    padded = decryptor.update(payload[16:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def _aesgcm(key: bytes, payload: bytes, etcd_key: bytes) -> bytes:
    if len(payload) < 12 + 16:
        raise ValueError("shorter than a nonce and a tag")
    return AESGCM(key).decrypt(payload[:12], payload[12:], etcd_key)


def _secretbox(key: bytes, payload: bytes) -> bytes:
    if len(payload) < SecretBox.NONCE_SIZE + SecretBox.MACBYTES:
        raise ValueError("shorter than a nonce and a tag")
    return SecretBox(key).decrypt(payload[SecretBox.NONCE_SIZE :], payload[: SecretBox.NONCE_SIZE])


def decrypt(value: bytes, etcd_key: bytes, ring: KeyRing | None) -> bytes:
    """The plain stored value of an encrypted one (the value itself if it is not encrypted).
    DecryptionError names the provider and key name, and what to do."""
    found = sealed(value)
    if found is None:
        return value
    what = f"encrypted at rest with {found.provider} key {found.key_name!r}"
    if found.provider not in DECRYPTABLE:
        kms = found.provider == "kms"
        raise DecryptionError(
            f"{what}: "
            + (
                "a KMS provider's key stays in the KMS, so it cannot be decrypted offline"
                if kms
                else "an unknown provider"
            )
        )
    if ring is None:
        raise DecryptionError(f"{what}: no encryption config (give --encryption-config FILE)")
    key = ring.keys.get((found.provider, found.key_name))
    if key is None:
        raise DecryptionError(f"{what}: {ring.origin} holds no {found.provider} key of that name")
    try:
        if found.provider == "aescbc":
            plain = _aescbc(key, found.payload)
        elif found.provider == "aesgcm":
            plain = _aesgcm(key, found.payload, etcd_key)
        else:
            plain = _secretbox(key, found.payload)
        if not plain.startswith(b"k8s\x00") and plain.lstrip()[:1] != b"{":
            # CBC has no tag: a wrong key passes the padding check once in ~256 tries.
            raise ValueError("what it gives is no stored object")
        return plain
    except (ValueError, InvalidTag, CryptoError) as exc:
        detail = str(exc) or "authentication failed"
        raise DecryptionError(
            f"{what}: the key of that name in {ring.origin} does not decrypt it"
            f" (a wrong key or a damaged value: {detail})"
        ) from None


class KeyRingLoader:
    """The encryption keys, read the first time an encrypted value needs them: from `explicit`,
    else from the path `locate` gives (its ConfigError says why there is none)."""

    def __init__(self, explicit: Path | None, locate: Callable[[], Path]) -> None:
        self._explicit = explicit
        self._locate = locate
        self._ring: KeyRing | None = None
        self._problem: str | None = None

    def ring(self) -> KeyRing:
        if self._ring is not None:
            return self._ring
        if self._problem is None:
            try:
                self._ring = load_config(self._explicit or self._locate())
                return self._ring
            except ConfigError as exc:
                self._problem = str(exc)
        raise DecryptionError(f"{self._problem} (give the right one with --encryption-config)")


def decrypt_stored(value: bytes, etcd_key: bytes, keys: KeyRingLoader) -> bytes:
    """`decrypt`, reading the keys only for a value they could decrypt (a KMS one is named
    without them)."""
    found = sealed(value)
    if found is None:
        return value
    ring = None
    if found.provider in DECRYPTABLE:
        try:
            ring = keys.ring()
        except DecryptionError as exc:
            what = f"encrypted at rest with {found.provider} key {found.key_name!r}"
            raise DecryptionError(f"{what}: {exc}") from None
    return decrypt(value, etcd_key, ring)
