"""paramiko's prefetch behind a starved sending thread (a loaded machine): once the reader has
caught up with every request sent so far, the rest of the download is still prefetched and
read in order, with no answer left parked in memory (paramiko's own flag said "done" there,
and every later read became a round trip while the outstanding answers piled up)."""

from __future__ import annotations

import os
import threading
from typing import Any

from k3s_backup.lab.lab import Lab
from k3s_backup.ssh.paramiko_quirks import prefetch_quietly
from tests.ssh.test_session import session

SIZE = 64 * 32768  # 64 requests of paramiko's 32 KiB


def test_a_download_caught_up_with_its_sender_is_still_prefetched(lab: Lab) -> None:
    data = os.urandom(SIZE)
    path = lab.remote_dir / "prefetched"
    path.write_bytes(data)
    caught_up = threading.Event()
    with session(lab) as ssh, ssh.sftp().open(str(path), "rb") as remote:
        file: Any = remote
        send_all = file._prefetch_thread

        def starved(chunks: list[tuple[int, int]], most: int | None) -> None:
            half = len(chunks) // 2
            send_all(chunks[:half], most)
            caught_up.wait(30)  # the sender gets no CPU until the reader caught up
            send_all(chunks[half:], most)

        file._prefetch_thread = starved
        prefetch_quietly(remote)
        first = remote.read(SIZE // 2)
        caught_up.set()
        rest = remote.read(SIZE)
        assert first + rest == data
        assert file._prefetch_data == {}  # no answer parked: each was read where it was wanted
