"""`k3s-backup status`: last run, next run, copies, freshness; exit 0 only when healthy."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from k3s_backup.policy.schedule import parse
from k3s_backup.scheduling import SystemPaths, cron_file, program_path, write_file
from tests.support.cli_runner import Result, invoke


def later(hours: float):
    return lambda: datetime.now().astimezone() + timedelta(hours=hours)


@pytest.fixture
def node(lab, tmp_path) -> Path:
    """A node root with the configuration and the cron schedule installed, and one backup."""
    paths = SystemPaths(tmp_path / "root")
    paths.config.parent.mkdir(parents=True)
    lab.write_config(paths.config)
    schedule = cron_file(parse("0 2 * * *"), program_path(), paths.config, lab.root / "log")
    write_file(paths.cron, schedule, 0o644)
    assert invoke(["--config", str(paths.config), "run"], environ=lab.env()).code == 0
    return paths.root


def status(lab, root: Path, *args: str, now=None) -> Result:
    return invoke(["status", "--root", str(root), *args], environ=lab.env(), now=now)


def test_healthy_after_a_backup(lab, node):
    result = status(lab, node, "--json", now=later(1))
    assert result.code == 0, result.stdout
    data = json.loads(result.stdout)
    assert data["healthy"] is True
    assert data["last_run"]["outcome"] == "success"
    assert data["last_run"]["targets"]["backup-host"]["ok"] is True
    assert data["schedule"]["expression"] == "0 2 * * *"
    assert data["schedule"]["scheduler"] == "cron"
    assert data["schedule"]["interval_seconds"] == 86400
    next_run = datetime.fromisoformat(data["schedule"]["next_run"])
    assert (next_run.hour, next_run.minute) == (2, 0)
    assert timedelta(0) < next_run - later(1)() <= timedelta(days=1)
    assert data["local"]["copies"] == 1
    [target] = data["targets"]
    assert target["copies"] == 1 and target["bytes"] > 0 and target["error"] is None
    assert data["newest_offsite"]["level"] == "OK"
    assert data["source"]["kind"] == "k3s"
    text = status(lab, node, now=later(1))
    assert "Healthy." in text.stdout and "0 2 * * *" in text.stdout


@pytest.mark.parametrize(("hours", "level"), [(47, "OK"), (49, "WARN"), (73, "FAIL")])
def test_freshness_is_warn_past_twice_and_fail_past_three_times_the_interval(
    lab, node, hours, level
):
    result = status(lab, node, "--json", now=later(hours))
    data = json.loads(result.stdout)
    assert data["newest_offsite"]["level"] == level
    assert result.code == (0 if level == "OK" else 1)


def test_no_schedule_installed_is_unhealthy_and_shows_no_next_run(lab, node):
    assert "Next run:" in status(lab, node, now=later(1)).stdout
    (node / "etc" / "cron.d" / "k3s-backup").unlink()
    result = status(lab, node, now=later(1))
    assert result.code == 1
    assert "WARN: no schedule installed" in result.stdout
    assert "NOT INSTALLED" in result.stdout
    assert "Next run" not in result.stdout  # nothing will run


SHOWN_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d")
ANY_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d[0-9:.]*(?:Z|[+-]\d\d:?\d\d)?")


def shown_times(text: str) -> list[str]:
    """Every date and time in `text`, each of which must be local time with its offset, to
    the second (not UTC with `Z`, not microseconds)."""
    found = ANY_TIME.findall(text)
    assert found and all(SHOWN_TIME.fullmatch(t) for t in found), found
    return found


def test_text_shows_the_newest_off_node_copys_age_and_one_time_format(lab, node):
    data = json.loads(status(lab, node, "--json", now=later(5)).stdout)
    text = status(lab, node, now=later(5)).stdout
    shown_times(text)
    newest = data["newest_offsite"]
    [line] = [ln for ln in text.splitlines() if ln.startswith("Newest off-node copy")]
    when = datetime.fromisoformat(newest["time"])
    assert datetime.fromisoformat(shown_times(line)[0]) == when
    assert re.search(r"\((4h 59m|5h 0m) ago\) on backup-host, OK$", line), line
    [last] = [ln for ln in text.splitlines() if ln.startswith("Last run:")]
    started = datetime.fromisoformat(data["last_run"]["started"]).replace(microsecond=0)
    assert datetime.fromisoformat(shown_times(last)[0]) == started
    assert "local:       1 copy, " in text and "backup-host: 1 copy, " in text
    assert "copies" not in text


def test_list_run_and_doctor_show_times_the_same_way(lab, node):
    config = node / "etc" / "k3s-backup" / "config.toml"
    listed = invoke(["--config", str(config), "list"], environ=lab.env())
    assert listed.code == 0, listed.stderr
    [header, *rows] = listed.stdout.splitlines()
    assert "CREATED " in header and "(UTC)" not in header
    data = json.loads(invoke(["--config", str(config), "list", "--json"], environ=lab.env()).stdout)
    for row, entry in zip(rows, data, strict=True):
        [created, *_rest] = shown_times(row)
        assert datetime.fromisoformat(created) == datetime.fromisoformat(entry["created"])
    log = (lab.root / "k3s-backup.log").read_text()
    shown_times(log)  # the run's log lines
    doctor = invoke(["doctor", "--root", str(node)], environ=lab.env(), now=later(1))
    [line] = [ln for ln in doctor.stdout.splitlines() if "succeeded" in ln]
    shown_times(line)


def test_an_unreachable_target_and_a_partial_run_are_unhealthy(lab, node):
    lab.sshd.stop()
    config = node / "etc" / "k3s-backup" / "config.toml"
    assert invoke(["--config", str(config), "run"], environ=lab.env()).code == 3
    result = status(lab, node, "--json", now=later(1))
    assert result.code == 1
    data = json.loads(result.stdout)
    assert data["last_run"]["outcome"] == "partial"
    assert data["targets"][0]["error"]
    levels = {f["level"] for f in data["findings"]}
    assert levels == {"WARN", "FAIL"}
    assert data["newest_offsite"] is None


def test_never_run_is_unhealthy(lab, tmp_path):
    paths = SystemPaths(tmp_path / "root")
    paths.config.parent.mkdir(parents=True)
    lab.write_config(paths.config)
    result = status(lab, paths.root)
    assert result.code == 1
    assert "Last run:    never" in result.stdout
    assert "FAIL: no verified off-node copy anywhere" in result.stdout


def plant_copy(lab, node_name: str, when: datetime) -> str:
    """A copy with its manifest on the backup host, named for `node_name` at `when`, as another
    server sharing the directory (or anyone who can write there) would leave."""
    [real] = [p for p in lab.remote_dir.iterdir() if p.name.endswith(".zst")]
    name = f"k3s-lab-{when.strftime('%Y%m%d-%H%M%S')}-{node_name}-{int(when.timestamp())}.zst"
    (lab.remote_dir / name).write_bytes(real.read_bytes())
    (lab.remote_dir / f"{name}.json").write_bytes(Path(f"{real}.json").read_bytes())
    return name


@pytest.mark.parametrize(("hours", "level"), [(1, None), (49, "WARN"), (73, "FAIL")])
def test_a_copy_named_in_the_future_is_never_fresh_and_is_named(lab, node, hours, level):
    planted = plant_copy(lab, "k3s-05", datetime.now().astimezone() + timedelta(days=3650))
    result = status(lab, node, "--json", now=later(hours))
    data = json.loads(result.stdout)
    assert data["newest_offsite"]["name"] != planted
    assert data["newest_offsite"]["level"] == (level or "OK")
    warnings = [f["message"] for f in data["findings"] if f["level"] == "WARN"]
    assert any(planted in m and "backup-host" in m and "in the future" in m for m in warnings)
    assert result.code == 1  # the planted copy alone is a WARN
    if level is not None:
        assert any(f["level"] == level and "k3s-05" in f["message"] for f in data["findings"])


def test_a_name_past_the_year_9999_is_flagged_not_a_traceback(lab, node):
    [real] = [p for p in lab.remote_dir.iterdir() if p.name.endswith(".zst")]
    planted = "k3s-lab-20261123-020000-k3s-05-999999999999.zst"
    (lab.remote_dir / planted).write_bytes(real.read_bytes())
    (lab.remote_dir / f"{planted}.json").write_bytes(Path(f"{real}.json").read_bytes())
    result = status(lab, node, now=later(1))
    assert result.code == 1
    assert f"WARN: {planted} on backup-host is named" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_copy_within_the_clock_skew_allowance_counts(lab, node):
    planted = plant_copy(lab, "k3s-05", datetime.now().astimezone() + timedelta(minutes=4))
    result = status(lab, node, "--json")
    data = json.loads(result.stdout)
    assert data["newest_offsite"]["name"] == planted
    assert result.code == 0, result.stdout


def test_another_servers_fresh_copies_do_not_keep_this_node_green(lab, node):
    """This node's backups stopped three days ago; another server keeps shipping to the same
    directory: this node is FAIL, the other one's newest is shown beside it."""
    then = later(73)
    other = plant_copy(lab, "k3s-06", then() - timedelta(hours=1))
    result = status(lab, node, "--json", now=then)
    assert result.code == 1
    data = json.loads(result.stdout)
    newest = data["newest_offsite"]
    assert newest["node"] == "k3s-05" and newest["level"] == "FAIL"
    [beside] = newest["other_nodes"]
    assert beside["node"] == "k3s-06" and beside["name"] == other
    assert beside["location"] == "backup-host"
    text = status(lab, node, now=then).stdout
    assert (
        "other node k3s-06:" in text and "FAIL: newest verified off-node copy of this node" in text
    )


def test_only_another_nodes_copies_is_a_fail(lab, node):
    for path in lab.remote_dir.iterdir():
        if "-k3s-05-" in path.name:  # this node's copy becomes another node's
            path.rename(path.with_name(path.name.replace("-k3s-05-", "-k3s-06-")))
    data = json.loads(status(lab, node, "--json", now=later(1)).stdout)
    assert data["newest_offsite"] is None
    assert any(
        f["level"] == "FAIL"
        and "no verified off-node copy of this node (k3s-05)" in f["message"]
        and "k3s-06" in f["message"]
        for f in data["findings"]
    )
