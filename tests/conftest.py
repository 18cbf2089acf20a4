"""Shared fixtures: `lab`, a fresh etcd + fake k3s + sshd per test (k3s_backup.lab.lab)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from k3s_backup.lab.lab import Lab
from k3s_backup.lab.s3 import S3Server
from k3s_backup.lab.sshd import SSHD

NEEDED = ("etcd", "etcdctl", "ssh-keygen")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    missing += [] if SSHD.exists() else [str(SSHD)]
    if missing:
        pytest.skip(f"the lab needs Debian's etcd-server, etcd-client, openssh-server: {missing}")
    with Lab(tmp_path / "lab") as started:
        yield started


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-speaking server (moto in server mode) on loopback, shared by the session."""
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server
