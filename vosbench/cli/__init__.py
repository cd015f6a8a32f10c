"""The `vosbench` command: argument parsing and progress only.

Each sub-command lives in its own module with `add_parser(subparsers)` that
registers it and sets `func` to a callable taking the parsed arguments. Every
command is a thin call into the library layers.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
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


def _option_value(argv: list[str], option: str) -> str | None:
    """The value of `option` as written in full on the command line (``--jobs 2`` or ``--jobs=2``), if any."""
    for k, word in enumerate(argv):
        if word == option and k + 1 < len(argv):
            return argv[k + 1]
        if word.startswith(option + "="):
            return word.partition("=")[2]
    return None


def _early_scoring_workers(command: str | None, argv: list[str]) -> contextlib.AbstractContextManager:
    """`vosbench evaluate --jobs N` (N other than 1) on joblib's default process backend: its workers are
    started before this process imports what the command needs, so that the two start-ups overlap
    (they are most of a short evaluation's time). Only for --jobs and --backend written in full; any
    other spelling just starts the workers later, at the first sequence."""
    jobs, backend = _option_value(argv, "--jobs"), _option_value(argv, "--backend")
    if command != "evaluate" or jobs is None or backend not in (None, "loky") or "-h" in argv or "--help" in argv:
        return contextlib.nullcontext()
    try:
        n_jobs = int(jobs)
    except ValueError:  # argparse reports it
        return contextlib.nullcontext()
    if n_jobs in (0, 1):
        return contextlib.nullcontext()
    from vosbench.tracks.parallel import workers_started_early

    return workers_started_early(n_jobs, "vosbench.tracks.jobs")


def console_main() -> int:
    """The `vosbench` executable (and `python -m vosbench`): `main`, then the interpreter exits."""
    try:
        return main()
    finally:
        # What is still alive now lives until the process exits: frozen, the cyclic collector's final
        # pass at exit skips it (over pandas, OpenCV and numpy that pass took 50 ms of every command).
        # Not in `main`, which callers may run inside a process that goes on.
        gc.freeze()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_of(argv)
    with _early_scoring_workers(command, argv):
        parser = build_parser(only=command)
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
    raise SystemExit(console_main())
