"""Each pre-flight check on real files and the real file system."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from k3s_backup.catalogue.bundle import Bundle
from k3s_backup.restore import preflight

SAVED = "K10abc::server:saved"


def saved_bundle(version: str | None = "v1.33.4+k3s1") -> Bundle:
    return Bundle(snapshot="s", node="n", k3s_version=version, token=SAVED, created="c")


def with_token(tmp_path: Path, token: str | None) -> Path:
    data_dir = tmp_path / "k3s"
    (data_dir / "server").mkdir(parents=True)
    if token is not None:
        (data_dir / "server" / "token").write_text(token + "\n")
    return data_dir


def test_the_same_token_passes(tmp_path: Path) -> None:
    assert preflight.token_problem(with_token(tmp_path, SAVED), saved_bundle()) is None


@pytest.mark.parametrize(
    ("token", "says"), [("K10abc::server:other", "differs"), (None, "is missing")]
)
def test_a_differing_or_missing_token_is_fixable_not_forceable(
    tmp_path: Path, token: str | None, says: str
) -> None:
    problem = preflight.token_problem(with_token(tmp_path, token), saved_bundle())
    assert problem is not None
    assert says in problem.message and str(tmp_path / "k3s/server/token") in problem.message
    assert problem.token_fix and not problem.overridable


def test_no_token_anywhere_is_refused(tmp_path: Path) -> None:
    problem = preflight.token_problem(with_token(tmp_path, None), None)
    assert problem is not None and not problem.overridable and not problem.token_fix
    assert "no restore bundle holds one" in problem.message
    assert preflight.token_problem(with_token(tmp_path / "b", "K10x"), None) is None


def test_a_server_line_is_found_in_config_yaml_and_drop_ins(tmp_path: Path) -> None:
    config_dir = tmp_path / "etc"
    (config_dir / "config.yaml.d").mkdir(parents=True)
    (config_dir / "config.yaml").write_text("# server: commented out\ntoken-file: /x\n")
    (config_dir / "config.yaml.d" / "notes.txt").write_text("server: not a yaml file\n")
    assert preflight.server_line_problem(config_dir) is None
    (config_dir / "config.yaml").write_text("node-name: a\nserver: https://10.0.0.5:6443\n")
    problem = preflight.server_line_problem(config_dir)
    assert problem is not None and not problem.overridable
    assert "config.yaml line 2 has `server: https://10.0.0.5:6443`" in problem.message
    assert preflight.server_line_problem(tmp_path / "no-such-dir") is None


def test_a_leftover_reset_flag_is_forceable(tmp_path: Path) -> None:
    data_dir = tmp_path / "k3s"
    assert preflight.reset_flag_problem(data_dir) is None
    (data_dir / "server" / "db").mkdir(parents=True)
    (data_dir / "server" / "db" / "reset-flag").touch()
    problem = preflight.reset_flag_problem(data_dir)
    assert problem is not None and problem.overridable
    assert "reset-flag is left from an earlier --cluster-reset" in problem.message


def test_not_enough_disk_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "k3s"  # not created yet: the nearest existing parent is measured
    free = shutil.disk_usage(tmp_path).free
    assert preflight.disk_problem(data_dir, 1024) is None
    problem = preflight.disk_problem(data_dir, free + (1 << 30))
    assert problem is not None and not problem.overridable
    assert f"not enough free space for the restore in {tmp_path}" in problem.message
    assert preflight.required_space(100 << 20) > 100 << 20


def test_an_older_k3s_is_refused_a_newer_passes_an_unknown_is_forceable() -> None:
    older = preflight.version_problem("v1.33.4+k3s1", saved_bundle("v1.34.2+k3s1"))
    assert older is not None and not older.overridable
    assert "older than the v1.34.2+k3s1" in older.message
    assert preflight.version_problem("v1.35.0+k3s1", saved_bundle("v1.34.2+k3s1")) is None
    assert preflight.version_problem("v1.34.2+k3s1", saved_bundle("v1.34.2+k3s1")) is None
    unknown = preflight.version_problem(None, saved_bundle("v1.34.2+k3s1"))
    assert unknown is not None and unknown.overridable
    assert preflight.version_problem(None, saved_bundle(None)) is None


def test_a_missing_bundle_is_forceable() -> None:
    problem = preflight.missing_bundle("k3s-lab-x")
    assert problem.overridable and "no restore bundle found for k3s-lab-x" in problem.message
