"""The fuzzing harness: hypothesis properties over every reader of foreign bytes.

Each target is a property "on any input, this reader returns a well-formed result or raises one
of our error types, within HANG_SECONDS". Inputs are real seed files (tests/fuzz/corpus/, made
by make_corpus.py from a real etcd) mutated the way damage and attackers mutate files: bytes
flipped, integers planted at header offsets, pages copied over others, truncated, spliced;
checksums optionally made valid again so the mutation reaches the deeper parsers.

CI runs each target for a fixed, derandomized number of examples (seconds per target). With
K3S_BACKUP_FUZZ_SECONDS set (bench/fuzz.sh), each target runs fresh random batches until that
many seconds passed, and K3S_BACKUP_FUZZ_REPORT names a JSON file that gets each target's
executions and seconds.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import signal
import struct
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k3s_backup.formats.bbolt import MAGIC

CORPUS = Path(__file__).with_name("corpus")
BUDGET_ENV = "K3S_BACKUP_FUZZ_SECONDS"
REPORT_ENV = "K3S_BACKUP_FUZZ_REPORT"
HANG_SECONDS = 20.0  # one input; any reader here takes milliseconds on these sizes
PAGE = 4096

executions: Counter[str] = Counter()
seconds: dict[str, float] = defaultdict(float)
T = TypeVar("T")


class Hang(AssertionError):
    """One input kept a reader busy past HANG_SECONDS: a hang is a finding, like a crash."""


def workdir() -> Path:
    """A private directory for one target's files, removed when the process ends."""
    path = Path(tempfile.mkdtemp(prefix="k3s-backup-fuzz-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def seed(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def budget() -> float:
    return float(os.environ.get(BUDGET_ENV) or 0)


@contextmanager
def hang_guard(target: str) -> Iterator[None]:
    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise Hang(f"{target}: one input took more than {HANG_SECONDS:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    try:
        signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fuzz_target(
    strategy: st.SearchStrategy[T], examples: int
) -> Callable[[Callable[[T], None]], Callable[[], None]]:
    """The test of one target: `check(input)` on `examples` inputs (CI), or on random batches
    of them for K3S_BACKUP_FUZZ_SECONDS."""

    def decorate(check: Callable[[T], None]) -> Callable[[], None]:
        target = f"{check.__module__.removeprefix('tests.fuzz.')}.{check.__name__}"
        fuzzing = budget() > 0

        @settings(
            max_examples=examples,
            deadline=None,  # a loaded CI machine; hangs are caught by hang_guard instead
            derandomize=not fuzzing,  # CI: the same inputs every run, no flaky failures
            database=None,
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        )
        @given(strategy)
        def one(value: T) -> None:
            executions[target] += 1
            with hang_guard(target):
                check(value)

        def test() -> None:
            started = time.monotonic()
            try:
                one()
                while time.monotonic() - started < budget():
                    one()
            finally:
                seconds[target] += time.monotonic() - started
                _report()

        test.__name__ = check.__name__
        test.__doc__ = check.__doc__
        return test

    return decorate


def _report() -> None:
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    report: dict[str, Any] = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as existing:
            report = json.load(existing)
    for target, count in executions.items():
        report[target] = {"executions": count, "seconds": round(seconds[target], 1)}
    with open(path, "w", encoding="utf-8") as out:
        json.dump(report, out, indent=2, sort_keys=True)


# --- mutations -------------------------------------------------------------------------------

EDITS = ("byte", "int", "int", "truncate", "insert", "delete", "copy")
_SMALL_INTS = [0, 1, 2, 3, 4, 5, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0xFFF, 0x1000, 0xFFFF, 0x10000]
_SMALL_INTS += [0x7FFFFFFF, 0xFFFFFFFF, 2**63 - 1, 2**64 - 1]
_OFFSETS_IN_HEADER = (0, 8, 10, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 72)


def _interesting(size: int, page: int) -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from([*_SMALL_INTS, size, size // page, size // page + 1]),
        st.integers(0, 2**64 - 1),
    )


@st.composite
def _position(draw: st.DrawFn, size: int, page: int) -> int:
    if size == 0:
        return 0
    if draw(st.booleans()):  # near the start of a page: where the headers are
        pages = max(size // page, 1)
        start = draw(st.integers(0, pages - 1)) * page
        return min(start + draw(st.sampled_from(_OFFSETS_IN_HEADER)), size - 1)
    return draw(st.integers(0, size - 1))


@st.composite
def mutated(
    draw: st.DrawFn,
    seeds: Sequence[bytes],
    page: int = PAGE,
    max_edits: int = 6,
    fix: Callable[[bytearray], None] | None = None,
) -> bytes:
    """One of `seeds` with up to `max_edits` edits; `fix` (if drawn) makes checksums valid
    again, so the edit is seen by the parser behind the checksum."""
    data = bytearray(draw(st.sampled_from(list(seeds))))
    for _ in range(draw(st.integers(0, max_edits))):
        edit, size = draw(st.sampled_from(EDITS)), len(data)
        pos = draw(_position(size, page))
        if edit == "byte" and size:
            data[pos] = draw(st.integers(0, 255))
        elif edit == "int":
            width = draw(st.sampled_from((1, 2, 4, 8)))
            value = draw(_interesting(size, page)) % (1 << (8 * width))
            data[pos : pos + width] = value.to_bytes(width, "little")
        elif edit == "truncate":
            del data[pos:]
        elif edit == "insert":
            data[pos:pos] = draw(st.binary(max_size=64))
        elif edit == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif edit == "copy" and size:
            source = draw(_position(size, page))
            length = draw(st.sampled_from((16, 64, page)))
            data[pos : pos + length] = data[source : source + length]
    if fix is not None and draw(st.booleans()):
        fix(data)
    return bytes(data)


# --- checksums made valid again --------------------------------------------------------------

_META_AT = 16  # after the page header
_META_COVERED = 56  # magic .. txid; the checksum (fnv-1a 64) follows


def _fnv1a64(data: bytes | bytearray) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def fix_bolt_meta(data: bytearray, page: int = PAGE) -> None:
    """Valid checksums on both meta pages, as bbolt would write them."""
    for offset in (0, page):
        start = offset + _META_AT
        if len(data) < start + _META_COVERED + 8:
            continue
        if struct.unpack_from("<I", data, start)[0] != MAGIC:
            continue
        checksum = _fnv1a64(data[start : start + _META_COVERED])
        struct.pack_into("<Q", data, start + _META_COVERED, checksum)


def fix_snapshot(data: bytearray) -> None:
    """Valid meta checksums and a valid SHA-256 trailer: damage only the tree walk can see."""
    if len(data) < 32:
        return
    del data[-32:]
    fix_bolt_meta(data)
    data += hashlib.sha256(data).digest()
