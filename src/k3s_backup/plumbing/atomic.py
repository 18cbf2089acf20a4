"""Files that appear whole or not at all: a temporary beside the file, fsynced, then renamed."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(
    path: Path,
    data: bytes,
    mode: int = 0o600,
    parent_mode: int = 0o700,
    make_parents: bool = True,
) -> None:
    """Write `data` to `path` with `mode`; a crash leaves the old file or the new, never half.
    Missing parents are created with `parent_mode` (less the umask) if `make_parents`. The
    temporary has a random name and is created with O_EXCL (a symlink planted there is refused,
    never followed); the rename replaces a symlink at `path` itself, never its target."""
    if make_parents:
        path.parent.mkdir(mode=parent_mode, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600 from the start
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any, mode: int = 0o600) -> None:
    """`data` as indented, key-sorted JSON, written as `write_atomic` writes."""
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), mode)
