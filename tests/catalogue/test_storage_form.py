"""Every stored form round-trips byte-exact, and decodes with standard tools (zstd, unzip, age)."""

from __future__ import annotations

import hashlib
import io
import subprocess
import threading
import zipfile
from pathlib import Path

import pyrage
import pytest
import zstandard

from k3s_backup.catalogue.storage_form import (
    DecodeError,
    EncodeError,
    StoredForm,
    decode,
    read_identities,
    stored_stream,
)
from k3s_backup.plumbing.streams import RefusedInput, copy_stream
from tests.support.broken_streams import FailingSource

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


def encode(plain: Path, form: StoredForm, suffix: str, inner: str, out_dir: Path) -> Path:
    """What a target would store: the stream read to its end, into a file."""
    out = out_dir / "stored"
    with (
        plain.open("rb") as source,
        stored_stream(source, plain.stat().st_size, form, suffix, inner) as stream,
        out.open("wb") as dest,
    ):
        copy_stream(stream, dest)
    return out


FORMS = [("none", False), ("zstd", False), ("zip", False), ("none", True), ("zstd", True)]
FORMS += [("zip", True)]


@pytest.mark.parametrize(("compression", "encrypted"), FORMS)
def test_a_snapshot_failing_half_way_is_an_error_never_a_short_stream(
    plain, identity, compression, encrypted
):
    """A short stream would verify against itself and be stored as a complete copy."""
    form = StoredForm(compression=compression, recipients=(identity[1],) if encrypted else ())
    data = plain.read_bytes()
    source = FailingSource(data, good=len(data) // 2)
    read = bytearray()
    with (
        pytest.raises(EncodeError, match=f"cannot read or encode {SNAPSHOT}: Input/output error"),
        stored_stream(source, len(data), form, "", SNAPSHOT) as stream,
    ):
        while chunk := stream.read(1 << 16):
            read += chunk
    assert len(read) < len(data)


def test_a_snapshot_shorter_than_its_checked_size_does_not_compress(plain):
    """A file changed after its check (truncated) must not ship as a smaller valid copy."""
    data = plain.read_bytes()
    with (
        pytest.raises(EncodeError, match=f"cannot read or encode {SNAPSHOT}"),
        stored_stream(io.BytesIO(data[:-1000]), len(data), StoredForm("zstd"), "", SNAPSHOT) as s,
    ):
        copy_stream(s, io.BytesIO())


def test_leaving_early_stops_the_encoder_thread(plain, identity):
    """A failed upload stops reading; the encoder must not block on a full pipe forever."""
    form = StoredForm("zstd", recipients=(identity[1],))
    before = threading.active_count()
    size = plain.stat().st_size
    with plain.open("rb") as source, stored_stream(source, size, form, "", SNAPSHOT) as stream:
        assert stream.read(10)
    assert threading.active_count() == before


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
        decode(stored, "none", "age", [other], workdir(tmp_path, "dec"), 1 << 30, "copy")
    with pytest.raises(DecodeError, match="pass --identity"):
        decode(stored, "none", "age", [], workdir(tmp_path, "dec2"), 1 << 30, "copy")


def test_identity_file_must_hold_a_secret_key(tmp_path):
    path = tmp_path / "id.txt"
    path.write_text("age1notasecret\n")
    with pytest.raises(DecodeError, match="no AGE-SECRET-KEY line"):
        read_identities(path)


BOMB = 64 << 20


def zstd_bomb(path: Path) -> Path:
    compressor = zstandard.ZstdCompressor().compressobj()
    body = b"".join(compressor.compress(bytes(1 << 20)) for _ in range(BOMB >> 20))
    path.write_bytes(body + compressor.flush())
    return path


def written(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir())


def test_a_zstd_bomb_decodes_no_further_than_the_plain_size_plus_one(tmp_path):
    bomb = zstd_bomb(tmp_path / "bomb.zst")
    out = workdir(tmp_path, "dec")
    with pytest.raises(RefusedInput, match=r"bomb\.zst, decoded, holds more than 8192 bytes"):
        decode(bomb, "zstd", "none", [], out, 8192, "bomb.zst")
    assert written(out) <= 8192


def test_a_zip_bomb_decodes_no_further_than_the_plain_size(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with (
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open(SNAPSHOT, "w", force_zip64=True) as entry,
    ):
        for _ in range(BOMB >> 20):
            entry.write(bytes(1 << 20))
    out = workdir(tmp_path, "dec")
    with pytest.raises(RefusedInput, match="holds more than 8192 bytes"):
        decode(bomb, "zip", "none", [], out, 8192, "bomb.zip")
    assert written(out) <= 8192


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_an_encrypted_copy_decrypts_no_further_than_its_cap(tmp_path, identity, compression):
    """age without compression: capped at the plain size; around zstd: at the stored size
    (age's plaintext is never longer), then zstd at the plain size."""
    key_file, recipient = identity
    inner = zstd_bomb(tmp_path / "bomb.zst") if compression == "zstd" else None
    body = inner.read_bytes() if inner else bytes(4 << 20)
    stored = tmp_path / "stored.age"
    stored.write_bytes(pyrage.encrypt(body, [pyrage.x25519.Recipient.from_str(recipient)]))
    out = workdir(tmp_path, "dec")
    with pytest.raises(RefusedInput, match="holds more than 8192 bytes"):
        decode(stored, compression, "age", read_identities(key_file), out, 8192, "stored.age")
    sizes = {p.name: p.stat().st_size for p in out.iterdir()}
    if inner is not None:
        assert sizes["decrypted"] == len(body) and sizes["plain"] <= 8192
    else:
        assert sizes == {"decrypted": sizes["decrypted"]} and sizes["decrypted"] <= 8192


@pytest.mark.parametrize(
    ("compression", "encrypted"), [("zstd", False), ("zip", False), ("zstd", True)]
)
def test_plain_bytes_other_than_the_checked_ones_fail_the_stream(
    tmp_path, plain, identity, compression, encrypted
):
    """Same size, other bytes: the stored form would decode fine, to the wrong snapshot."""
    recipients = (identity[1],) if encrypted else ()
    form = StoredForm(compression=compression, recipients=recipients)
    size = plain.stat().st_size
    checked = hashlib.sha256(b"the bytes that were checked").hexdigest()
    with (
        plain.open("rb") as source,
        pytest.raises(EncodeError, match=f"{SNAPSHOT} changed since it was checked"),
        stored_stream(source, size, form, "", SNAPSHOT, checked) as stream,
    ):
        copy_stream(stream, io.BytesIO())
    with plain.open("rb") as source:
        real = hashlib.sha256(source.read()).hexdigest()
    with (
        plain.open("rb") as source,
        stored_stream(source, size, form, "", SNAPSHOT, real) as stream,
    ):
        assert copy_stream(stream, io.BytesIO()) > 0


def test_a_damaged_age_payload_is_a_decode_error(tmp_path, plain, identity):
    # Found by fuzzing (tests/fuzz/test_storage_form.py): pyrage's streaming decrypt reports a
    # damaged payload as a bare OSError, not as its DecryptError.
    key_file, recipient = identity
    stored = encode(
        plain, StoredForm(recipients=(recipient,)), "", SNAPSHOT, workdir(tmp_path, "enc")
    )
    damaged = bytearray(stored.read_bytes())
    damaged[-100] ^= 0x01
    stored.write_bytes(bytes(damaged))
    with pytest.raises(DecodeError, match=r"cannot decrypt \(age\): damaged or truncated"):
        decode(
            stored,
            "none",
            "age",
            read_identities(key_file),
            workdir(tmp_path, "dec"),
            plain.stat().st_size,
            "c",
        )


def test_a_damaged_deflate_stream_in_a_zip_copy_is_a_decode_error(tmp_path, plain):
    # Found by fuzzing (tests/fuzz/test_storage_form.py): zlib.error is no BadZipFile.
    stored = encode(plain, StoredForm("zip"), "", SNAPSHOT, workdir(tmp_path, "enc"))
    damaged = bytearray(stored.read_bytes())
    start = damaged.index(SNAPSHOT.encode()) + len(SNAPSHOT)  # the entry's data follows
    damaged[start : start + 64] = bytes(64)
    damaged[start] = 0x05  # a dynamic-Huffman block with impossible code lengths
    stored.write_bytes(bytes(damaged))
    with pytest.raises(DecodeError, match=r"cannot decompress \(zip\)"):
        decode(stored, "zip", "none", [], workdir(tmp_path, "dec"), plain.stat().st_size, "c")
