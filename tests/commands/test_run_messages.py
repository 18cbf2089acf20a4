"""How `run` words a target's failure: once (not again in the summary), the target named once,
in plain words rather than paramiko's ("Error reading SSH protocol banner")."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.support.cli_runner import invoke


def run(lab, config):
    return invoke(["--config", str(config), "run"], environ=lab.env())


def test_a_port_that_is_not_ssh_is_said_in_plain_words_once(lab, tmp_path):
    wrong = lab.ssh_target(name="proxmox", port=lab.etcd.client_port, connect_timeout=2)
    config = lab.write_config(tmp_path / "c.toml", targets=[wrong])
    result = run(lab, config)
    assert result.code == 3
    said = result.stdout + result.stderr
    assert "Error reading SSH protocol banner" not in said
    assert "proxmox: proxmox" not in said
    [failure] = [line for line in said.splitlines() if "no SSH server answered" in line]
    assert failure == (
        f"error: target proxmox failed: cannot connect to 127.0.0.1:{lab.etcd.client_port}:"
        " no SSH server answered there (it sent no SSH banner); check the host and the port"
    )
    assert "Target proxmox: FAILED (the error above)" in result.stdout


def test_a_multi_line_host_key_refusal_is_printed_once(lab, tmp_path):
    lab.known_hosts.write_text("")
    config = lab.write_config(tmp_path / "c.toml")
    result = run(lab, config)
    assert result.code == 3
    said = result.stdout + result.stderr
    assert said.count("ssh-keyscan") == 1 and said.count("It offered ssh-ed25519") == 1
    assert "target backup-host failed: the host key of" in result.stderr
    assert "backup-host: backup-host" not in said and "failed: backup-host:" not in said


def test_a_retried_link_names_the_target_once(lab, tmp_path):
    lab.sshd.stop()
    target = lab.ssh_target(retries=1, retry_delay=0)
    config = lab.write_config(tmp_path / "c.toml", targets=[target])
    result = invoke(["--config", str(config), "run"], environ=lab.env(), sleep=lambda _: None)
    assert result.code == 3
    assert "warning: target backup-host: cannot connect to" in result.stderr
    assert "error: target backup-host failed (after 2 attempts): cannot connect to" in result.stderr
    assert "backup-host: backup-host" not in result.stderr
    assert result.stderr.count("Connection refused") == 2  # the retry's warning, the failure


def test_a_known_hosts_that_is_a_directory_is_named(lab, tmp_path):
    known = tmp_path / "known_hosts_dir"
    known.mkdir()
    config = lab.write_config(tmp_path / "c.toml", targets=[lab.ssh_target(known_hosts=known)])
    result = run(lab, config)
    assert result.code == 3
    assert f"cannot read known_hosts {known}: Is a directory" in result.stderr
    assert "Errno" not in result.stderr


def test_a_key_others_can_read_is_warned_about_once_and_the_run_goes_on(lab, tmp_path):
    key = tmp_path / "keys" / "id_ed25519"
    key.parent.mkdir()
    key.write_bytes(lab.sshd.client_key.read_bytes())
    key.chmod(0o644)
    targets = [
        lab.ssh_target(name="first", identity_file=key),
        lab.ssh_target(name="second", identity_file=key, path=tmp_path / "second"),
    ]
    (tmp_path / "second").mkdir()
    config = lab.write_config(tmp_path / "c.toml", targets=targets)
    result = run(lab, config)
    assert result.code == 0
    warning = f"warning: SSH key {key} is readable by others (mode 0644), which ssh refuses:"
    assert result.stderr.count(warning) == 1
    assert f"`chmod 600 {key}`" in result.stderr
    logged = (lab.root / "k3s-backup.log").read_text()  # where a scheduled run's reader looks
    assert logged.count(f"WARNING: SSH key {key} is readable by others (mode 0644)") == 1
    key.chmod(0o600)
    assert "SSH key" not in run(lab, config).stderr


def test_a_server_that_hangs_up_after_its_banner_is_said_in_plain_words(lab, tmp_path):
    """What sshd does past MaxStartups, or a firewall after the first packet: paramiko's
    EOFError carries no words at all ("cannot connect to ...: EOFError")."""
    with socket.create_server(("127.0.0.1", 0)) as server:

        def hang_up() -> None:
            with contextlib.suppress(OSError):
                while True:
                    peer, _ = server.accept()
                    with peer:
                        peer.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
                        peer.recv(4096)

        threading.Thread(target=hang_up, daemon=True).start()
        port = server.getsockname()[1]
        target = lab.ssh_target(name="proxmox", port=port, connect_timeout=5)
        result = run(lab, lab.write_config(tmp_path / "c.toml", targets=[target]))
    assert result.code == 3
    said = result.stdout + result.stderr
    assert "EOFError" not in said
    assert (
        f"error: target proxmox failed: cannot connect to 127.0.0.1:{port}: the connection was"
        " closed from the other end (the server's sshd log says why" in said
    )
