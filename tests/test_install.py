"""What install.sh leaves a new user with: bash completion that completes commands and options,
and one last line, the setup command (not a second, different "next step")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = Path(sys.executable).parent / "k3s-backup"  # the installed entry point


def completion_script() -> str:
    """What install.sh writes to /etc/bash_completion.d/k3s-backup."""
    done = subprocess.run(
        [str(PROGRAM)],
        env={**os.environ, "_K3S_BACKUP_COMPLETE": "bash_source"},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def complete(script: Path, *words: str) -> list[str]:
    """COMPREPLY after bash-completion calls our function for `k3s-backup WORDS<TAB>`."""
    line = " ".join(["k3s-backup", *words])
    shell = (
        f"source {script}\n"
        f"COMP_WORDS=({line}); COMP_CWORD={len(words)}\n"
        "_k3s_backup_completion k3s-backup\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    path = os.pathsep.join([str(PROGRAM.parent), os.environ.get("PATH", "")])
    done = subprocess.run(
        ["bash", "--norc", "-c", shell],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None or not PROGRAM.exists(), reason="needs bash")
def test_bash_completion_completes_commands_and_options(tmp_path):
    script = tmp_path / "k3s-backup"
    script.write_text(completion_script())
    assert "complete -o nosort -F _k3s_backup_completion k3s-backup" in script.read_text()
    assert complete(script, "res") == ["restore"]
    assert set(complete(script, "")) >= {"run", "setup", "status", "restore", "extract"}
    assert "--deleted-since" in complete(script, "extract", "latest", "--del")
    assert complete(script, "setup", "--scheduler", "") == ["cron", "systemd"]


def test_install_sh_installs_the_completion_and_ends_with_the_setup_command():
    lines = [ln.strip() for ln in (ROOT / "install.sh").read_text().splitlines()]
    code = [ln for ln in lines if ln and not ln.startswith("#")]
    assert '_K3S_BACKUP_COMPLETE=bash_source "$BIN_LINK" > "$COMPLETION.tmp"' in code
    assert 'COMPLETION="${K3S_BACKUP_COMPLETION:-/etc/bash_completion.d/k3s-backup}"' in code
    said = [ln for ln in code if ln.startswith("echo") and ">&2" not in ln]
    assert said == [
        'echo "Installed $("$BIN_LINK" --version). Next: sudo k3s-backup setup --host BACKUP-HOST"'
    ]
    assert code[-1] == said[0]
    init = next(ln for ln in code if "config init" in ln)
    assert init.endswith(">/dev/null")  # its own "Wrote ..." line would be a second next step
