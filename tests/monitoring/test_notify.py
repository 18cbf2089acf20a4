"""Pings and webhooks, received by a real HTTP server on loopback; a notifier that is down,
slow or failing never fails the backup, and the log says so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from k3s_backup.lab.fake_k3s import FakeK3sState
from k3s_backup.monitoring.http import DeliveryError, post
from k3s_backup.plumbing.loopback import free_port
from tests.support.cli_runner import Result, invoke
from tests.support.http_recorder import RecordingServer

CHECK = "/ping/0f6e2a4c"  # stands for a healthchecks.io check's secret UUID
HOOK = "/hooks/T000/s3cr3t"


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer() as started:
        yield started


def backup(lab, tmp_path: Path, **notify: object) -> Result:
    config = lab.write_config(tmp_path / "config.toml", notify=notify)
    return invoke(["--config", str(config), "run"], environ=lab.env())


def log_text(lab) -> str:
    return (lab.root / "k3s-backup.log").read_text()


def test_success_pings_start_then_the_url_with_the_log_tail(lab, tmp_path, server):
    result = backup(lab, tmp_path, ping_url=server.url + CHECK, webhook_url=server.url + HOOK)
    assert result.code == 0, result.stderr
    assert server.paths() == [f"{CHECK}/start", CHECK]  # no webhook on success by default
    start, done = server.requests
    assert (start.method, start.body) == ("POST", b"")
    assert done.content_type.startswith("text/plain")
    body = done.body.decode()
    assert "Starting etcd backup of cluster k3s-lab" in body
    assert body.splitlines()[-1].startswith("Backup complete: k3s-lab-")
    assert result.stderr == ""


def test_failure_pings_fail_and_posts_the_run_report(lab, tmp_path, server):
    state = FakeK3sState.load(lab.state_file)
    state.failure = "fatal"
    state.save(lab.state_file)
    result = backup(lab, tmp_path, ping_url=server.url + CHECK, webhook_url=server.url + HOOK)
    assert result.code == 1
    assert server.paths() == [f"{CHECK}/start", f"{CHECK}/fail", HOOK]
    fail = server.requests[1].body.decode()
    assert "ERROR: snapshot failed, nothing shipped" in fail
    hook = server.requests[2]
    assert hook.content_type == "application/json"
    payload = json.loads(hook.body)
    assert payload["event"] == "failure" and payload["cluster"] == "k3s-lab"
    assert payload["report"]["outcome"] == "failed" and payload["report"]["exit_code"] == 1
    assert payload["report"]["error"].startswith("snapshot failed, nothing shipped")
    assert payload["text"].endswith(payload["report"]["error"])
    assert "backup of k3s-lab failed (exit 1)" in payload["text"]
    assert any("snapshot failed" in line for line in payload["log_tail"])


def test_partial_run_pings_fail(lab, tmp_path, server):
    lab.sshd.stop()
    result = backup(lab, tmp_path, ping_url=server.url + CHECK)
    assert result.code == 3
    assert server.paths() == [f"{CHECK}/start", f"{CHECK}/fail"]
    assert "backup PARTIAL" in server.requests[1].body.decode()


def test_webhook_on_success_posts_the_report(lab, tmp_path, server):
    result = backup(lab, tmp_path, webhook_url=server.url + HOOK, webhook_on_success=True)
    assert result.code == 0, result.stderr
    [hook] = server.requests
    payload = json.loads(hook.body)
    assert payload["event"] == "success"
    report = payload["report"]
    assert report["outcome"] == "success" and report["targets"]["backup-host"]["ok"] is True
    assert payload["text"].endswith("backup of k3s-lab success (exit 0)")


def test_notifiers_that_are_down_only_warn(lab, tmp_path):
    down = f"http://127.0.0.1:{free_port()}"
    result = backup(
        lab,
        tmp_path,
        ping_url=down + CHECK,
        webhook_url=down + HOOK,
        webhook_on_success=True,
        retries=0,
    )
    assert result.code == 0, result.stderr
    for what in ("ping (start)", "ping (success)", "webhook"):
        message = (
            f"{what} to {down} failed: Connection refused (after 1 attempt);"
            " the backup itself is not affected"
        )
        assert f"warning: {message}" in result.stderr
        assert f"WARNING: {message}" in log_text(lab)
    assert CHECK not in log_text(lab) and HOOK not in log_text(lab)  # secrets stay out of logs
    assert "Backup complete" in result.stdout


def test_slow_notifiers_time_out_and_the_backup_succeeds(lab, tmp_path):
    with RecordingServer(hold=True) as slow:
        result = backup(lab, tmp_path, ping_url=slow.url + CHECK, timeout=0.3, retries=0)
        assert result.code == 0, result.stderr
        assert slow.paths() == [f"{CHECK}/start", CHECK]  # both sent, neither answered in time
    assert f"ping (start) to {slow.url} failed: timed out (after 1 attempt)" in result.stderr
    assert f"ping (success) to {slow.url} failed: timed out" in log_text(lab)


def test_a_failing_endpoint_is_retried(lab, tmp_path):
    with RecordingServer(statuses=[503]) as flaky:
        result = backup(lab, tmp_path, ping_url=flaky.url + CHECK, retries=1)
        assert flaky.paths() == [f"{CHECK}/start", f"{CHECK}/start", CHECK]
    assert result.code == 0 and result.stderr == ""


def test_a_client_error_is_not_retried():
    with RecordingServer(statuses=[404]) as gone, pytest.raises(DeliveryError) as raised:
        post(
            gone.url + CHECK,
            b"",
            "text/plain",
            timeout=5,
            retries=3,
            sleep=lambda _: pytest.fail("retried"),
        )
    assert str(raised.value) == "HTTP 404 Not Found (after 1 attempt)"
    assert gone.paths() == [CHECK]
