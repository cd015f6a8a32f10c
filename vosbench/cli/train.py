"""`vosbench train`: train a method that knows how to train itself.

A method class takes part by defining a classmethod ``train(config)`` that receives a
`vosbench.methods.training.TrainConfig` (every field below) and returns a
summary with ``steps``, ``wall_seconds``, ``weights`` and ``stopped_by``.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vosbench.cli.choices import add_option_argument, parse_options
from vosbench.errors import VosbenchError
from vosbench.cli.dataset_args import add_dataset_arguments, dataset_kind, default_out
from vosbench.io.factory import open_dataset
from vosbench.methods.registry import get_method
from vosbench.methods.training import TrainConfig

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a method on a dataset split (seeded, resumable)")
    parser.add_argument("--method", required=True, help="registered method name, e.g. stm")
    add_dataset_arguments(parser, split="train", gt_flags=("--gt", "--data"),
                          gt_help="dataset root, e.g. a DAVIS folder (default: the embedded synthetic dataset, "
                                  "whose train split `vosbench run` leaves out)")
    parser.add_argument("--out", type=Path, default=None,
                        help="training folder: checkpoints, losses, weights (default: "
                             "$VOSBENCH_HOME/train/<method>-<dataset>)")
    parser.add_argument("--steps", type=int, default=3000, help="step budget")
    parser.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget; stops cleanly")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-4, dest="learning_rate")
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default OMP_NUM_THREADS or all cores)")
    add_option_argument(parser, help="method-specific training option, e.g. --option crop=160 (repeatable)")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cls = get_method(args.method)
    train = getattr(cls, "train", None)
    if not callable(train):
        raise VosbenchError(f"method {args.method!r} cannot be trained by vosbench (its class has no train()).")
    root, kind = dataset_kind(args)
    name = open_dataset(kind, root, split=args.split, resolution=args.resolution).name
    print(f"dataset: {name} {args.split} at {root}", flush=True)
    out = args.out or default_out("train", f"{args.method}-{name}")
    config = TrainConfig(data=root, out=out, split=args.split,
                         dataset=kind.value, resolution=args.resolution, steps=args.steps,
                         max_minutes=args.max_minutes, seed=args.seed, resume=args.resume,
                         batch_size=args.batch_size, learning_rate=args.learning_rate,
                         checkpoint_every=args.checkpoint_every, device=args.device, threads=args.threads,
                         progress=args.progress, options=parse_options(args.option))
    summary = train(config)
    print(f"{args.method}: {summary.steps} steps in {summary.wall_seconds / 60:.1f} min "
          f"(stopped by {summary.stopped_by}); weights: {summary.weights}")
    return 0
