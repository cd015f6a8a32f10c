"""`vosbench train`: train a method that knows how to train itself.

A method class takes part by defining a classmethod ``train(config)`` that receives a
`vosbench.methods.training.TrainConfig` (every field below) and returns a
summary with ``steps``, ``wall_seconds``, ``weights`` and ``stopped_by``.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vosbench.cli.choices import add_enum_argument, add_option_argument, parse_options
from vosbench.errors import VosbenchError
from vosbench.io.factory import DatasetKind
from vosbench.methods.registry import get_method
from vosbench.methods.training import TrainConfig

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a method on a dataset split (seeded, resumable)")
    parser.add_argument("--method", required=True, help="registered method name, e.g. stm")
    parser.add_argument("--data", required=True, type=Path, help="dataset root (e.g. a DAVIS folder)")
    add_enum_argument(parser, "--dataset", DatasetKind, default=DatasetKind.DAVIS2016)
    parser.add_argument("--split", default="train")
    parser.add_argument("--resolution", default="480p", help="annotation resolution folder")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default runs/train-METHOD)")
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
    config = TrainConfig(data=args.data, out=args.out or Path("runs") / f"train-{args.method}", split=args.split,
                         dataset=args.dataset.value, resolution=args.resolution, steps=args.steps,
                         max_minutes=args.max_minutes, seed=args.seed, resume=args.resume,
                         batch_size=args.batch_size, learning_rate=args.learning_rate,
                         checkpoint_every=args.checkpoint_every, device=args.device, threads=args.threads,
                         progress=args.progress, options=parse_options(args.option))
    summary = train(config)
    print(f"{args.method}: {summary.steps} steps in {summary.wall_seconds / 60:.1f} min "
          f"(stopped by {summary.stopped_by}); weights: {summary.weights}")
    return 0
