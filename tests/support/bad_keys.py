"""Unusable SSH private keys, made for real (ssh-keygen, the file system): what a new user has."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

KINDS = ("passphrase", "malformed", "directory", "public")


def bad_key(kind: str, good: Path, where: Path) -> Path:
    """A key file at `where` that k3s-backup cannot use, of `kind`; from the authorized `good`
    key where that matters (a passphrase on the very key the host accepts)."""
    where.parent.mkdir(parents=True, exist_ok=True)
    if kind == "passphrase":
        shutil.copy(good, where)
        where.chmod(0o600)
        command = ["ssh-keygen", "-q", "-p", "-P", "", "-N", "s3cret", "-f", str(where)]
        subprocess.run(command, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    elif kind == "malformed":
        text = good.read_text().splitlines()
        where.write_text("\n".join(text[:3]) + "\n")  # cut short: "MalformedFraming"
        where.chmod(0o600)
    elif kind == "directory":
        where.mkdir(mode=0o700)
    elif kind == "public":
        shutil.copy(good.with_name(good.name + ".pub"), where)
        where.chmod(0o600)
    else:
        raise ValueError(kind)
    return where
