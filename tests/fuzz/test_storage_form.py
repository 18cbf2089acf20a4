"""Fuzz: decoding a stored copy (storage_form.decode): zstd, zip and age, as `fetch`, `restore`,
`inspect` and `drill` do before checking the snapshot."""

from __future__ import annotations

import shutil

from hypothesis import strategies as st

from k3s_backup.catalogue.storage_form import DecodeError, decode, read_identities
from k3s_backup.errors import SnapshotError
from k3s_backup.formats.etcd_snapshot import check_file
from k3s_backup.plumbing.streams import RefusedInput
from tests.fuzz.harness import CORPUS, fuzz_target, mutated, seed, workdir

IDENTITIES = read_identities(CORPUS / "age-identity.txt")
FORMS = {  # seed -> (compression, encryption)
    "etcd.snapshot.zst": ("zstd", "none"),
    "etcd.snapshot.zip": ("zip", "none"),
    "etcd.snapshot.zst.age": ("zstd", "age"),
    "etcd.snapshot.zip.age": ("zip", "age"),
}
_WORKDIR = workdir()


PLAIN_CAP = 1 << 20


@st.composite
def stored_copies(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(FORMS)))
    return name, draw(mutated([seed(name)], page=256))


@fuzz_target(stored_copies(), examples=300)
def test_decode(stored: tuple[str, bytes]) -> None:
    name, data = stored
    compression, encryption = FORMS[name]
    workdir = _WORKDIR / "work"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir()
    copy = workdir / name
    copy.write_bytes(data)
    try:
        # with the cap a manifest gives: a plain size of 1 MiB, as a crafted one may say
        plain = decode(copy, compression, encryption, IDENTITIES, workdir, PLAIN_CAP, name)
        check_file(plain)  # what fetch does next: the snapshot must verify
        assert plain.stat().st_size <= PLAIN_CAP
    except (DecodeError, SnapshotError, RefusedInput):
        pass
