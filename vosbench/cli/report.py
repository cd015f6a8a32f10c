"""`vosbench report RUN... --html OUT/`: one static page of several runs (leaderboard, attributes, curves)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vosbench.cli.choices import add_enum_argument
from vosbench.cli.dataset_args import DATASET_HELP
from vosbench.errors import VosbenchError
from vosbench.io.factory import detect_dataset_kind
from vosbench.io.factory import DatasetKind
from vosbench.tracks.params import Track

log = logging.getLogger(__name__)


def _named(text: str) -> tuple[str | None, Path]:
    """``NAME=PATH`` or ``PATH``."""
    if "=" in text and not Path(text).exists():
        name, path = text.split("=", 1)
        return name, Path(path)
    return None, Path(text)


def _recorded_kind(runs: list[str]) -> str | None:
    """The dataset kind the runs recorded (run.json's dataset identity); an error when they disagree."""
    import json

    seen: dict[tuple, str] = {}
    kinds: list[str] = []
    for text in runs:
        path = _named(text)[1] / "run.json"
        if not path.is_file():
            continue
        try:
            identity = json.loads(path.read_text(encoding="utf-8")).get("dataset_identity") or {}
        except ValueError:
            continue
        if identity:
            seen.setdefault((identity.get("name"), identity.get("split"), identity.get("fingerprint")), str(path))
            kinds.append(str(identity.get("kind")))
    if len(seen) > 1:
        described = "; ".join(f"{where}: {name} {split}, ground truth {fp}" for (name, split, fp), where in seen.items())
        raise VosbenchError(f"the runs were made on different data ({described}); a report compares runs of one "
                            "dataset. Report them separately.")
    return kinds[0] if kinds else None


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="write one HTML page comparing runs (leaderboard, per-attribute chart, curves)",
        description="RUN is a run folder, a results folder evaluated by `vosbench evaluate`, a folder of masks "
                    "(scored against --gt), or an interactive run folder (report.csv, summary.json); "
                    "NAME=RUN names it on the page.")
    parser.add_argument("runs", nargs="+", metavar="RUN")
    parser.add_argument("--html", required=True, type=Path, help="output folder (index.html is written there)")
    parser.add_argument("--gt", type=Path, default=None, help="dataset root, to score folders of masks")
    add_enum_argument(parser, "--dataset", DatasetKind, default=None, help=DATASET_HELP + "; without --gt: the "
                      "kind the runs recorded")
    parser.add_argument("--split", default="val")
    add_enum_argument(parser, "--track", [Track.SEMI, Track.UNSUPERVISED], default=Track.SEMI)
    parser.add_argument("--resolution", default="480p")
    parser.add_argument("--leaderboard", type=Path, default=None, help="a leaderboard .json/.csv to show on top")
    parser.add_argument("--sequence", action="append", default=None,
                        help="sequence to plot over time (repeatable; default: where the methods differ most)")
    parser.add_argument("--title", default="vosbench report")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vosbench.reports.attributes import AttributeSet
    from vosbench.reports.html import write_html_report
    from vosbench.reports.leaderboard import read_leaderboard
    from vosbench.reports.sessions import is_interactive_folder, load_interactive
    from vosbench.reports.tables import concat, load_run

    kind = detect_dataset_kind(args.gt, args.dataset).value if args.gt is not None else None
    kind = kind or (args.dataset.value if args.dataset is not None else None) or _recorded_kind(args.runs)
    frames, interactive = [], {}
    for text in args.runs:
        name, path = _named(text)
        if is_interactive_folder(path):
            session = load_interactive(path, name)
            interactive[session.method] = session.curve
            continue
        frames.append(load_run(path, name, gt=args.gt, dataset=kind, track=args.track.value,
                               split=args.split, resolution=args.resolution))
    names = [f["method"].iloc[0] for f in frames if len(f)]
    if len(set(names)) != len(names):
        log.error("two runs share a name (%s); name them with NAME=RUN", ", ".join(names))
        return 2
    leaderboard = read_leaderboard(args.leaderboard) if args.leaderboard else None
    attributes = kind if kind in {a.value for a in AttributeSet} else None
    path = write_html_report(concat(frames), args.html, title=args.title, leaderboard=leaderboard,
                             attributes=attributes, interactive=interactive or None, sequences=args.sequence)
    print(f"wrote {path}")
    return 0
