"""The `vosbench` command: argument parsing and progress only.

Each sub-command lives in its own module with `add_parser(subparsers)` that
registers it and sets `func` to a callable taking the parsed arguments. Every
command is a thin call into the library layers.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from vosbench.errors import VosbenchError

# Sub-command modules, in the order `vosbench --help` lists them.
COMMANDS = ["run", "train", "generate", "evaluate", "validate", "interactive", "leaderboard", "report", "pack", "serve"]

log = logging.getLogger("vosbench")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (`only`) the parser of one sub-command: each sub-command module imports
    what its command needs (pandas, torch, the interactive robot...), and a command should not pay
    for the others' imports (`vosbench evaluate` starts in a third of the time)."""
    parser = argparse.ArgumentParser(prog="vosbench", description="Video object segmentation benchmark.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in ([only] if only in COMMANDS else COMMANDS):
        importlib.import_module(f"vosbench.cli.{name}").add_parser(subparsers)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The sub-command named on the command line (the first word that is not an option), if any."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=_command_of(argv))
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    try:
        result = args.func(args)
    except VosbenchError as exc:
        log.error("error: %s", exc)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted; finished work is kept and a re-run resumes from it")
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
