"""`k3s-backup serve` and `k3s-backup serve-prune`: the backup host's commands, parsed with
argparse (standard library: no click, no config file), so the forced command starts fast and
runs from any Python that finds k3s_backup (`python3 -m k3s_backup.service serve ...` too).

Exit codes: 0 done; 1 a refusal ended the connection, or a file could not be removed; 2 usage.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from k3s_backup.policy.retention import GfsRules
from k3s_backup.service import protocol


def _retention(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--keep", type=_positive, required=required, help="newest copies per node")
    for rule in ("daily", "weekly", "monthly"):
        parser.add_argument(f"--keep-{rule}", type=_count, default=0, help=f"GFS {rule} copies")
    parser.add_argument(
        "--protect-days", type=_count, default=0, help="keep every copy received in the last N days"
    )


def _positive(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1: the newest copy is always kept")
    return value


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="k3s-backup", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="the service a node's key runs (sshd forced command; host-setup installs it)"
    )
    serve.add_argument("--root", type=Path, required=True, help="the backup directory")
    serve.add_argument("--cluster", required=True, help="only this cluster's copies")
    access = serve.add_mutually_exclusive_group()
    access.add_argument("--append-only", action="store_true", help="never delete")
    access.add_argument("--read-only", action="store_true", help="list and read only")
    serve.add_argument("--max-size", type=_positive, default=1 << 40, help="largest copy, bytes")
    serve.add_argument(
        "--max-per-day", type=_count, default=0, help="new copies accepted per 24 h (0: any)"
    )
    _retention(serve, required=False)
    prune = commands.add_parser("serve-prune", help="rotate a backup directory on this host")
    prune.add_argument("--root", type=Path, required=True, help="the backup directory")
    prune.add_argument("--cluster", required=True, help="only this cluster's copies")
    prune.add_argument("--dry-run", action="store_true", help="say, remove nothing")
    _retention(prune, required=True)
    return parser


def _rules(args: argparse.Namespace) -> GfsRules:
    return GfsRules(args.keep or 1, args.keep_daily, args.keep_weekly, args.keep_monthly)


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse's usage errors and --help
        return int(exit_.code or 0)
    if args.command == "serve-prune":
        from k3s_backup.service.prune import prune

        return prune(args.root, args.cluster, _rules(args), args.protect_days, args.dry_run, print)
    from k3s_backup.service.server import Settings, run

    for signum in (signal.SIGHUP, signal.SIGTERM):  # sshd's hang-up: an upload's temporary
        signal.signal(signum, _stop)  # is removed on the way out, as on a cut stream

    mode = protocol.APPEND_ONLY if args.append_only else protocol.PRUNE
    mode = protocol.READ_ONLY if args.read_only else mode
    if mode == protocol.PRUNE and args.keep is None:
        try:
            parser.error("a key that may delete needs this host's retention: --keep N")
        except SystemExit as exit_:
            return int(exit_.code or 2)
    settings = Settings(
        args.root,
        args.cluster,
        mode,
        _rules(args),
        args.max_size,
        protect_days=args.protect_days,
        max_per_day=args.max_per_day,
    )
    with open(0, "rb", buffering=0, closefd=False) as rx, open(1, "wb", closefd=False) as tx:
        return run(settings, rx, tx)


if __name__ == "__main__":
    sys.exit(main())
