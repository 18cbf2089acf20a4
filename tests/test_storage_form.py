"""Every stored form round-trips byte-exact, and decodes with standard tools (zstd, unzip, age)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pyrage
import pytest

from k3s_backup.storage_form import (
    DecodeError,
    StoredForm,
    decode,
    encode,
    encode_hashed,
    read_identities,
)

SNAPSHOT = "k3s-lab-20261123-020000-k3s-05-1795399200"


@pytest.fixture
def plain(tmp_path) -> Path:
    path = tmp_path / SNAPSHOT
    # Compressible like a real bbolt file: repeated pages with some noise.
    path.write_bytes((b"/registry/configmaps/default/cm-" + bytes(range(200))) * 20000)
    return path


@pytest.fixture
def identity(tmp_path) -> tuple[Path, str]:
    key = pyrage.x25519.Identity.generate()
    path = tmp_path / "age-identity.txt"
    path.write_text(f"# created: test\n# public key: {key.to_public()}\n{key}\n")
    path.chmod(0o600)
    return path, str(key.to_public())


def workdir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


@pytest.mark.parametrize("compression", ["none", "zstd", "zip"])
@pytest.mark.parametrize("encrypted", [False, True])
def test_round_trip_is_byte_exact(tmp_path, plain, identity, compression, encrypted):
    key_file, recipient = identity
    form = StoredForm(compression=compression, recipients=(recipient,) if encrypted else ())
    stored = encode(plain, form, "", SNAPSHOT, workdir(tmp_path, "enc"))
    if compression != "none" or encrypted:
        assert stored != plain and stored.stat().st_mode & 0o777 == 0o600
    identities = read_identities(key_file) if encrypted else []
    back = decode(stored, compression, form.encryption, identities, workdir(tmp_path, "dec"))
    assert back.read_bytes() == plain.read_bytes()
    if compression != "none":
        assert stored.stat().st_size < plain.stat().st_size or encrypted


@pytest.mark.parametrize("compression", ["none", "zstd", "zip"])
@pytest.mark.parametrize("encrypted", [False, True])
def test_digest_taken_while_encoding_is_the_stored_files(
    tmp_path, plain, identity, compression, encrypted
):
    form = StoredForm(compression=compression, recipients=(identity[1],) if encrypted else ())
    encoded = encode_hashed(plain, form, "", SNAPSHOT, workdir(tmp_path, "enc"))
    if encoded.path == plain or (compression == "zip" and not encrypted):
        assert encoded.sha256 is None  # the caller has it already, or hashes the zip after
    else:
        assert encoded.sha256 == hashlib.sha256(encoded.path.read_bytes()).hexdigest()


def test_standard_tools_decode_every_form(tmp_path, plain, identity):
    key_file, recipient = identity
    zst = encode(plain, StoredForm("zstd"), "", SNAPSHOT, workdir(tmp_path, "a"))
    out = subprocess.run(["zstd", "-d", "-c", str(zst)], capture_output=True, check=True).stdout
    assert out == plain.read_bytes()
    zipped = encode(plain, StoredForm("zip"), "", SNAPSHOT, workdir(tmp_path, "b"))
    out = subprocess.run(
        ["unzip", "-p", str(zipped), SNAPSHOT], capture_output=True, check=True
    ).stdout
    assert out == plain.read_bytes()
    sealed = encode(
        plain, StoredForm("zstd", recipients=(recipient,)), "", SNAPSHOT, workdir(tmp_path, "c")
    )
    decrypted = subprocess.run(
        ["age", "-d", "-i", str(key_file), str(sealed)], capture_output=True, check=True
    ).stdout
    out = subprocess.run(
        ["zstd", "-d", "-c"], input=decrypted, capture_output=True, check=True
    ).stdout
    assert out == plain.read_bytes()


def test_k3s_zip_snapshots_are_not_compressed_twice(tmp_path, plain):
    form = StoredForm("zstd")
    assert form.suffix(".zip") == ""
    assert form.suffix("") == ".zst"
    assert StoredForm("zstd", recipients=("age1x",)).suffix(".db") == ".zst.age"


def test_wrong_identity_is_refused_clearly(tmp_path, plain, identity):
    _key_file, recipient = identity
    stored = encode(
        plain, StoredForm(recipients=(recipient,)), "", SNAPSHOT, workdir(tmp_path, "enc")
    )
    other = pyrage.x25519.Identity.generate()
    with pytest.raises(DecodeError, match="cannot decrypt it with the given identity"):
        decode(stored, "none", "age", [other], workdir(tmp_path, "dec"))
    with pytest.raises(DecodeError, match="pass --identity"):
        decode(stored, "none", "age", [], workdir(tmp_path, "dec2"))


def test_identity_file_must_hold_a_secret_key(tmp_path):
    path = tmp_path / "id.txt"
    path.write_text("age1notasecret\n")
    with pytest.raises(DecodeError, match="no AGE-SECRET-KEY line"):
        read_identities(path)
