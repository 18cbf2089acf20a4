"""Fuzz: restore bundles read from targets (bundle.from_bytes)."""

from __future__ import annotations

from k3s_backup.catalogue import bundle
from tests.fuzz.harness import fuzz_target, mutated, seed


@fuzz_target(mutated([seed("bundle.tar")], page=512), examples=200)
def test_bundle(data: bytes) -> None:
    try:
        parsed = bundle.from_bytes(data, "fuzzed")
    except bundle.BundleError:
        return
    assert isinstance(parsed.token, str) and isinstance(parsed.snapshot, str)
    assert parsed.k3s_version is None or isinstance(parsed.k3s_version, str)
    assert sum(len(v) for v in parsed.config_files.values()) <= bundle.MAX_TOTAL
