"""File system conditions the tests need, made for real."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def unwritable(directory: Path) -> Iterator[None]:
    """Root ignores modes, so as root the directory is made immutable instead."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(directory)], check=False).returncode != 0:
            pytest.skip("chattr +i is not supported here")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
    else:
        directory.chmod(0o500)
        try:
            yield
        finally:
            directory.chmod(0o700)
