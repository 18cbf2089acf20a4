"""What the stand-in `k3s` shares with its kubectl and server parts: K3s's (urfave/cli) flag
parsing, logrus-style log lines, its two ways of failing, and etcd's restore check."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, TextIO

TRAILER = 32


class Fatal(Exception):
    """Ends the command with `level=fatal msg="Error: ..."` and exit 1."""


class Usage(Exception):
    """A command line urfave/cli would reject."""


_VALUE_FLAGS = {
    "name": "name",
    "dir": "dir",
    "etcd-snapshot-dir": "dir",
    "data-dir": "data-dir",
    "d": "data-dir",
    "snapshot-retention": "retention",
    "etcd-snapshot-retention": "retention",
    "o": "output",
    "output": "output",
    "node-name": "node-name",
    "token": "token",
    "t": "token",
    "server": "server",
    "s": "server",
    "config": "config",
    "c": "config",
    "log": "log",
    "l": "log",
    "cluster-reset-restore-path": "restore-path",
}
_BOOL_FLAGS = {
    "etcd-snapshot-compress": "compress",
    "snapshot-compress": "compress",
    "cluster-reset": "cluster-reset",
    "debug": "debug",
    "alsologtostderr": "alsologtostderr",
    "etcd-s3": "s3",
    "s3": "s3",
    "etcd-s3-insecure": "s3",
    "etcd-s3-skip-ssl-verify": "s3",
}


def _flag_kind(name: str) -> tuple[str, bool] | None:
    """(canonical name, takes a value) of a known flag; K3s's own S3 options are ignored."""
    if name in _BOOL_FLAGS:
        return _BOOL_FLAGS[name], False
    if name in _VALUE_FLAGS:
        return _VALUE_FLAGS[name], True
    if name.startswith(("etcd-s3-", "s3-")):
        return "s3-" + name, True
    return None


def parse_flags(tokens: list[str]) -> tuple[list[str], dict[str, str]]:
    """Positional words and flags, `--flag value`, `--flag=value` and `-flag` forms alike."""
    words: list[str] = []
    flags: dict[str, str] = {}
    rest = iter(tokens)
    for token in rest:
        if token == "--":
            words.extend(rest)
            break
        if not token.startswith("-") or token == "-":
            words.append(token)
            continue
        name, has_value, value = token.lstrip("-").partition("=")
        kind = _flag_kind(name)
        if kind is None:
            raise Usage(f"flag provided but not defined: -{name}")
        canonical, takes_value = kind
        if takes_value and not has_value:
            following = next(rest, None)
            if following is None:
                raise Usage(f"flag needs an argument: -{name}")
            value = following
        flags[canonical] = value if (takes_value or has_value) else "true"
    return words, flags


class Logger:
    """logrus on stderr: text format when piped, `INFO[0000]` style on a terminal."""

    _SHORT: ClassVar[dict[str, str]] = {
        "info": "INFO",
        "warning": "WARN",
        "error": "ERRO",
        "fatal": "FATA",
    }

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()

    def log(self, level: str, msg: str) -> None:
        if self.tty:
            elapsed = int(time.monotonic() - self.started)
            line = f"{self._SHORT[level]}[{elapsed:04d}] {msg}"
        else:
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            line = f'time="{now}" level={level} msg={json.dumps(msg, ensure_ascii=False)}'
        self.stream.write(line + "\n")
        self.stream.flush()

    def raw(self, text: str) -> None:
        self.stream.write(text if text.endswith("\n") or not text else text + "\n")
        self.stream.flush()


def has_trailer(path: Path) -> bool:
    """etcd's restore check: size 512*n+32 and SHA-256 of the database = the last 32 bytes."""
    size = path.stat().st_size
    if size % 512 != TRAILER:
        return False
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        remaining = size - TRAILER
        while remaining:
            chunk = stream.read(min(1 << 20, remaining))
            digest.update(chunk)
            remaining -= len(chunk)
        return digest.digest() == stream.read(TRAILER)


def trailing_time(path: Path) -> int:
    stem = path.name.removesuffix(".zip")
    last = stem.rsplit("-", 1)[-1]
    return int(last) if last.isdigit() else int(path.stat().st_mtime)


def rfc3339(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_error(exc: OSError, verb: str, path: Path) -> str:
    reason = (exc.strerror or str(exc)).lower()
    return f"{verb} {path}: {reason}"
