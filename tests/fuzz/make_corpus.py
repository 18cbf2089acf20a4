"""Write the fuzzing seeds in tests/fuzz/corpus/ from real parts: a snapshot a real etcd
(Debian's etcd-server, as in the other tests) saved of Kubernetes-like data, and that snapshot
in every form a target stores (K3s's zip, zstd, age), with a manifest and a restore bundle made
by the product's own code, and a SQLite (kine) datastore copied with SQLite's backup API.

Run again only to refresh the seeds: `python -m tests.fuzz.make_corpus`. The age identity in
the corpus is a throwaway test key that protects nothing.
"""

from __future__ import annotations

import io
import sqlite3
import tempfile
import zipfile
from pathlib import Path

import pyrage
import zstandard

from k3s_backup.catalogue import bundle
from k3s_backup.catalogue.manifest import for_snapshot
from k3s_backup.catalogue.storage_form import StoredForm, stored_stream
from k3s_backup.formats.protowire import encode_bytes, encode_varint
from k3s_backup.lab.etcd import EtcdServer
from k3s_backup.policy import naming
from tests.support.k8s_data import load_cluster

CORPUS = Path(__file__).with_name("corpus")
NAME = "k3s-lab-20261123-020000-k3s-05-1795399200"


def _timestamped_pod() -> bytes:
    """A Pod whose ObjectMeta has a creationTimestamp (field 8): seconds and nanos."""
    created = encode_bytes(8, b"\x08" + encode_varint(1795399200) + b"\x10\x05")
    meta = encode_bytes(1, b"stamped") + encode_bytes(3, b"default") + created
    type_meta = encode_bytes(1, b"v1") + encode_bytes(2, b"Pod")
    return b"k8s\x00" + encode_bytes(1, type_meta) + encode_bytes(2, encode_bytes(1, meta))


def snapshot(workdir: Path) -> bytes:
    with EtcdServer(workdir / "etcd") as etcd:
        load_cluster(etcd)
        etcd.put("/registry/pods/default/stamped", _timestamped_pod())
        return etcd.snapshot_save(workdir / "snap.db").read_bytes()


def stored(plain: bytes, form: StoredForm, suffix: str = "") -> bytes:
    with stored_stream(io.BytesIO(plain), len(plain), form, suffix, NAME) as stream:
        return stream.read()


def kine_db(workdir: Path) -> bytes:
    source = sqlite3.connect(workdir / "state.db")
    source.execute("CREATE TABLE kine (id INTEGER PRIMARY KEY, name TEXT, value BLOB)")
    source.executemany(
        "INSERT INTO kine (name, value) VALUES (?, ?)",
        [(f"/registry/configmaps/default/cm-{i}", b"v" * 50) for i in range(30)],
    )
    source.commit()
    copy = sqlite3.connect(workdir / "copy.db")
    source.backup(copy)
    copy.close()
    source.close()
    return (workdir / "copy.db").read_bytes()


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    identity = pyrage.x25519.Identity.generate()
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        plain = snapshot(workdir)
        sqlite = kine_db(workdir)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(NAME, plain)
    recipients = (str(identity.to_public()),)
    parsed = naming.parse("k3s-lab", NAME)
    assert parsed is not None
    made = bundle.Bundle(
        snapshot=NAME,
        node="k3s-05",
        k3s_version="v1.33.4+k3s1",
        token="K10" + "ab" * 32 + "::server:" + "cd" * 16,
        created="2026-11-23T02:00:00+00:00",
        config_files={"config.yaml": b"cluster-init: true\n", "config.yaml.d/10-x.yaml": b"a: 1\n"},
    )
    seeds = {
        "etcd.snapshot": plain,
        "etcd.snapshot.zip": zipped.getvalue(),
        "etcd.snapshot.zst": zstandard.ZstdCompressor(level=3).compress(plain),
        "etcd.snapshot.zst.age": stored(plain, StoredForm("zstd", 3, recipients)),
        "etcd.snapshot.zip.age": stored(plain, StoredForm("zip", 3, recipients)),
        "age-identity.txt": f"# a throwaway test key\n{identity}\n".encode(),
        "manifest.json": for_snapshot(parsed, "k3s", len(plain), "0" * 64).to_json(),
        "bundle.tar": bundle.to_bytes(made),
        "kine.db": sqlite,
    }
    for name, data in seeds.items():
        (CORPUS / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
