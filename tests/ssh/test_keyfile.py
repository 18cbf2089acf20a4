"""Loading the node's SSH key: each way a key file can be unusable named, with its fix."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from k3s_backup.lab.sshd import ssh_keygen
from k3s_backup.ssh.keyfile import KeyFileError, load_private_key
from tests.support.bad_keys import bad_key

EXPECTED = {
    "passphrase": ("is protected by a passphrase", "ssh-keygen -p -N '' -f {key}"),
    "malformed": ("is not a private key", "ssh-keygen -t ed25519 -N '' -f {key}"),
    "directory": ("is a directory, not a key file", "the private key file inside it"),
    "public": ("holds a public key, not the private one", "the file without .pub"),
}


@pytest.fixture
def good(tmp_path) -> Path:
    key = tmp_path / "good" / "id_ed25519"
    key.parent.mkdir()
    ssh_keygen(key, "test")
    return key


def test_a_good_key_loads(good):
    assert load_private_key(good).get_name() == "ssh-ed25519"


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_each_unusable_key_is_named_with_its_fix(kind, good, tmp_path):
    key = bad_key(kind, good, tmp_path / "bad" / "id_ed25519")
    with pytest.raises(KeyFileError) as raised:
        load_private_key(key)
    problem, fix = EXPECTED[kind]
    assert str(key) in raised.value.problem and problem in raised.value.problem
    assert fix.format(key=key) in raised.value.fix


def test_a_directory_for_a_key_gets_the_exact_command(good, tmp_path):
    """`identity_file = "/root/.ssh"`: the key inside it; a mkdir'ed key path: remove it and
    let setup make the key; anything else: a new key file inside it, made by setup."""
    ssh_dir = good.parent
    with pytest.raises(KeyFileError) as raised:
        load_private_key(ssh_dir)
    assert raised.value.fix.endswith(f": `k3s-backup setup --identity-file {good}`")
    empty = tmp_path / "empty" / "id_ed25519"
    empty.mkdir(parents=True)
    with pytest.raises(KeyFileError) as raised:
        load_private_key(empty)
    assert raised.value.fix.endswith(f"`rmdir {empty} && k3s-backup setup`")
    (empty / "notes.txt").write_text("x")
    with pytest.raises(KeyFileError) as raised:
        load_private_key(empty)
    assert raised.value.fix.endswith(f"`k3s-backup setup --identity-file {empty}/id_ed25519`")


def test_a_missing_key_and_a_fifo(good, tmp_path):
    with pytest.raises(KeyFileError, match="does not exist"):
        load_private_key(tmp_path / "nothing")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(KeyFileError, match="is not a regular file"):  # and does not hang
        load_private_key(fifo)


def test_damaged_keys_never_escape_as_another_error(good, tmp_path):
    data = good.read_bytes()
    damaged = tmp_path / "damaged"
    for index in range(0, len(data), 7):  # every seventh byte flipped, one at a time
        damaged.write_bytes(data[:index] + bytes([data[index] ^ 0x55]) + data[index + 1 :])
        with contextlib.suppress(KeyFileError):  # a flip in the comment still loads
            load_private_key(damaged)


def _load_as_nobody(key: Path) -> str:
    """What loading `key` says when run as `nobody` (root reads every file)."""
    code = (
        "import sys; from pathlib import Path; from k3s_backup.ssh.keyfile import *\n"
        "try: load_private_key(Path(sys.argv[1]))\n"
        "except KeyFileError as e: print(e)\n"
    )
    setpriv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    done = subprocess.run([*setpriv, sys.executable, "-c", code, str(key)], capture_output=True)
    assert done.stderr == b""  # no traceback
    return done.stdout.decode()


def test_a_key_another_user_cannot_read_or_reach():
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as another user")
    with tempfile.TemporaryDirectory() as top:  # not under pytest's 0700 tmp dir
        Path(top).chmod(0o755)
        key = Path(top) / "keys" / "id_ed25519"
        key.parent.mkdir(mode=0o755)
        ssh_keygen(key, "test")  # root's, 0600
        said = _load_as_nobody(key)
        assert f"cannot read SSH key {key}: permission denied" in said
        assert f"chmod 600 {key}" in said
        key.parent.chmod(0o700)
        assert f"cannot reach SSH key {key}: Permission denied" in _load_as_nobody(key)
