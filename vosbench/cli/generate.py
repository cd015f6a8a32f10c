"""`vosbench generate`: write a seeded synthetic DAVIS 2017-layout dataset (no download)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vosbench.errors import VosbenchError
from vosbench.io.layouts import LAYOUTS, generate_layout
from vosbench.io.synthetic import SyntheticParams, generate_dataset

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    defaults = SyntheticParams()
    parser = subparsers.add_parser(
        "generate", help="write a synthetic DAVIS 2017-layout dataset from a seed",
        description="Textured objects cut from scikit-image's sample photographs move, scale, occlude each other "
                    "and leave and re-enter the frame over panning natural backgrounds. The same seed and sizes "
                    "give the same masks, byte for byte.")
    parser.add_argument("--out", required=True, type=Path, help="dataset folder to create")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sequences", type=int, default=defaults.n_sequences,
                        help="number of sequences (a third go to train, the rest to val)")
    parser.add_argument("--frames", type=int, default=defaults.n_frames, help="frames per sequence")
    parser.add_argument("--height", type=int, default=defaults.height)
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--max-objects", type=int, default=defaults.max_objects)
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--layout", default="davis2017", choices=("davis2017",) + LAYOUTS,
                        help="davis2017 (default): the textured DAVIS 2017 set above; mose, mosev2, lvos, sav, vost: "
                             "a small set in that benchmark's layout with the cases its evaluator treats specially "
                             "(objects leaving and coming back, appearing late, never predicted, an all-empty result, "
                             "a video of --long-frames frames; SA-V: overlapping objects)")
    parser.add_argument("--results", type=Path, default=None,
                        help="with --layout other than davis2017: also write result masks to score, in the "
                             "layout's results format, into this folder")
    parser.add_argument("--long-frames", type=int, default=1000,
                        help="with --layout: frames of the long video (default 1000, at least 30)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.layout != "davis2017":
        if args.long_frames < 30:
            # Fewer, and SA-V's every-4th-frame annotations leave an object no scored frame in view.
            raise VosbenchError("vosbench generate: --long-frames must be at least 30.")
        root = generate_layout(args.layout, args.out, seed=args.seed, long_frames=args.long_frames,
                               results=args.results)
        print(f"{root}: {args.layout} layout, seed {args.seed}"
              + (f"; results to score in {args.results}" if args.results else ""))
        print(f"score them: vosbench evaluate --dataset {args.layout} --gt {root} --results "
              f"{args.results or 'RESULTS'}")
        return 0
    try:
        params = SyntheticParams(n_sequences=args.sequences, n_frames=args.frames, height=args.height,
                                 width=args.width, max_objects=args.max_objects)
    except ValueError as exc:
        raise VosbenchError(f"vosbench generate: {exc}") from None
    root = generate_dataset(args.out, seed=args.seed, params=params, progress=args.progress)
    print(f"{root}: {params.n_val} val + {params.n_train} train sequences of {params.n_frames} frames, "
          f"{params.width}x{params.height}, seed {args.seed}")
    return 0
