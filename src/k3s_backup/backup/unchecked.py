"""This run's snapshot until it is first read whole. K3s wrote it; its size and bbolt meta
pages were checked as it was taken (sources/k3s.py), and its SHA-256 trailer is checked as the
first upload reads it: the plain bytes are read and hashed once per run, not once to check them
and again to ship them (issue 20).

Nothing is published before the check: its end is the read that ends the upload's source, so a
bad snapshot makes that read raise and the target gives the copy no final name; a good one is
recorded (the local manifest) by that same read, before the target renames anything. A target
catching up older copies, or no upload reading it to its end (no target reached, each failing
part-way), has it checked on its own first, as it was before.
"""

from __future__ import annotations

from collections.abc import Callable

from k3s_backup.errors import SnapshotError
from k3s_backup.formats.etcd_snapshot import SnapshotCheck, TrailerCheck, check_file, naming_file
from k3s_backup.plumbing.streams import Readable
from k3s_backup.policy import naming
from k3s_backup.sources.base import TakenSnapshot

Settled = Callable[[SnapshotCheck], None]


class SnapshotCheckFailed(SnapshotError):
    """This run's snapshot is bad (or its record could not be written): nothing is shipped."""


class UncheckedSnapshot:
    """`record` writes the local manifest (at the end of the first read, before anything is
    published; SnapshotError if it cannot); `announce` says the snapshot is checked, once the
    upload is over."""

    def __init__(self, snapshot: TakenSnapshot, record: Settled, announce: Settled) -> None:
        self.snapshot = snapshot
        self._record = record
        self._announce = announce
        self.checked: SnapshotCheck | None = None
        self.failure: SnapshotError | None = None

    @property
    def name(self) -> naming.SnapshotName:
        return self.snapshot.name

    def reading(self, plain: Readable) -> Readable:
        """The snapshot file `plain`, checked as it is read; `settle()` once the upload is over."""
        return _CheckedRead(plain, self)

    def sha256(self) -> str:
        """The plain snapshot's digest, once it was read to its end and passed (for a put
        that stores the file as it is: the digest its copy must have)."""
        if self.checked is None:
            raise ValueError(f"{self.name.filename} was not read to its end")
        return self.checked.sha256

    def passed(self, check: SnapshotCheck) -> None:
        self._record(check)
        self.checked = check

    def settle(self) -> None:
        """After an upload that read it: SnapshotCheckFailed if it is bad, whatever the target
        made of the read that raised; said to be checked if it passed; nothing if the upload
        ended before its end (the next one checks it)."""
        if self.failure is not None:
            raise SnapshotCheckFailed(str(self.failure)) from self.failure
        if self.checked is not None:
            self._announce(self.checked)

    def check_alone(self) -> None:
        """Check it with a read of its own (no upload read it to its end, or others go first)."""
        if self.checked is None:
            try:
                self.passed(check_file(self.snapshot.path))
            except SnapshotError as exc:
                self.failure = exc
        self.settle()


class _CheckedRead:
    """Reads through, checking; the read that finds the end raises if the snapshot is bad,
    and records it first if it is good: only then does the upload see its end."""

    def __init__(self, plain: Readable, owner: UncheckedSnapshot) -> None:
        self.plain = plain
        self.owner = owner
        self.check = TrailerCheck()

    def read(self, size: int = -1, /) -> bytes:
        data = self.plain.read(size)
        if data:
            self.check.update(data)
        elif self.owner.failure is not None:
            raise self.owner.failure
        elif self.owner.checked is None:
            try:
                with naming_file(self.owner.snapshot.path):
                    check = self.check.result()
                self.owner.passed(check)
            except SnapshotError as exc:
                self.owner.failure = exc
                raise
        return data
