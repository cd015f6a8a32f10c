"""`vosbench interactive`: play the DAVIS interactive protocol against a method with the scribble robot."""
from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from vosbench.cli.choices import add_enum_argument, add_option_argument, parse_options
from vosbench.errors import VosbenchError
from vosbench.cli.dataset_args import add_dataset_arguments, default_out, open_cli_dataset
from vosbench.tracks.interactive.engine import BudgetRule

log = logging.getLogger(__name__)

# The strongest interactive baseline installed with vosbench: what `vosbench interactive --robot` plays.
# s2m-stm beats scribble-propagation on DAVIS 2016 val and on the embedded dataset (its model card).
DEFAULT_METHOD = "s2m-stm"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "interactive", help="interactive track: scribble robot, timed sessions, J&F@60s and AUC",
        description="Play the DAVIS interactive protocol end to end: the robot draws the official scribbles, "
                    "the method answers with masks, the time budget is charged with the method's answer times "
                    "(--budget-rule wall-clock: as the framework does); prints the protocol, J&F@60s, AUC and the "
                    "J&F-vs-time curve. Without --gt it runs on the embedded synthetic dataset; without --method it "
                    f"plays the strongest interactive baseline ({DEFAULT_METHOD}).")
    parser.add_argument("--robot", action="store_true", default=True,
                        help="scribbles come from the robot (the only mode, and the default; the official command "
                             "line names it)")
    parser.add_argument("--method", default=DEFAULT_METHOD,
                        help=f"registered interactive method (default: {DEFAULT_METHOD})")
    add_dataset_arguments(parser)
    parser.add_argument("--sequences", nargs="+", default=None, help="only these sequences")
    parser.add_argument("--scribbles", type=Path, default=None,
                        help="folder of <sequence>/<NNN>.json first scribbles (default: <gt>/Scribbles when present; "
                             "else the robot draws the first scribble)")
    parser.add_argument("--max-interactions", type=int, default=8, help="interactions per sample (at most 16)")
    parser.add_argument("--max-time", type=float, default=240.0, help="seconds per object per sample (at most 600)")
    parser.add_argument("--threshold", type=float, default=60.0, help="time of the J&F@t score (seconds)")
    parser.add_argument("--seed", type=int, default=None,
                        help="tie-break of the robot's skeletons. Default: the official scribbles (the DAVIS "
                             "challenges' tie-break, scikit-image <= 0.18). An integer breaks ties with that seed "
                             "instead: a deterministic robot, NOT the official scribbles")
    add_enum_argument(parser, "--budget-rule", BudgetRule, default=BudgetRule.METHOD_TIME,
                      help="how a sample's time budget is charged: method-time (the method's answers only; "
                           "default) or wall-clock (time since the sample started, the framework's rule)")
    parser.add_argument("--device", default="auto")
    add_option_argument(parser, help="a constructor option of the method, e.g. propagator=zero-motion (repeatable)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: $VOSBENCH_HOME/interactive/<dataset>-<method>)")
    parser.add_argument("--restart", action="store_true",
                        help="play every sample again (by default finished samples of an interrupted run of the "
                             "same method and parameters are taken from <out>/.checkpoint)")
    parser.add_argument("--no-plot", dest="plot", action="store_false")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vosbench.methods.base import InteractiveMethod
    from vosbench.methods.registry import check_options, load_method
    from vosbench.tracks.interactive.session import SessionParams, find_samples, run_session

    dataset = open_cli_dataset(args)
    tag = dataset.name
    options = parse_options(args.option)
    check_options(args.method, options)
    method = load_method(args.method, device=args.device, **options)
    if not isinstance(method, InteractiveMethod):
        raise VosbenchError(f"method {args.method!r} is a {method.track} method, not an interactive one")
    params = SessionParams(max_interactions=args.max_interactions, max_time=args.max_time,
                           threshold=args.threshold, seed=args.seed, budget_rule=args.budget_rule)
    samples = find_samples(dataset, args.scribbles, sequences=args.sequences)
    out = args.out or default_out("interactive", f"{tag}-{args.method}")
    checkpoint = out / ".checkpoint"
    if args.restart and checkpoint.is_dir():
        shutil.rmtree(checkpoint)
    result = run_session(dataset, method, params, samples=samples, progress=args.progress,
                         checkpoint_dir=checkpoint)
    paths = result.write(out)
    if args.plot:
        from vosbench.reports.interactive_plots import plot_curve

        paths["plot"] = plot_curve(result.curve, out / "curve.png", threshold=params.threshold, label=args.method)
    print(result.format_table())
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    print(f"output folder: {out}")
    return 0
