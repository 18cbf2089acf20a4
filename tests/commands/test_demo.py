"""The README's first command: the demo's backup and restore cycle must stay true."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli_runner import invoke


def test_demo_backs_up_and_restores_every_key(tmp_path: Path) -> None:
    result = invoke(["demo", "--workdir", str(tmp_path / "demo")])
    assert result.code == 0, result.stderr
    assert "'revision': " in result.stdout  # etcdctl snapshot status of the fetched copy
    assert result.lines[-1].startswith("Demo complete:")
    assert "brought back all 50 keys exactly as they were backed up" in result.lines[-1]
