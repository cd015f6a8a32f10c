"""Seconds per frame and per sequence of each method, fine-tuning apart: the README's cost table.

    python benchmarks/method_costs.py --methods stm osvos masktrack             # embedded dataset, CPU
    python benchmarks/method_costs.py --gt /data/DAVIS2016 --sequences car-shadow blackswan --device cuda

Each method is built once and run over the sequences one after the other (one process, `--threads`
torch threads); a method's own time is what `vosbench run` records (producing each mask, reading
the frames it asks for, its online fine-tuning); fine-tuning is read from the method's
``last_finetune_seconds`` where it has one. Prints a markdown table and writes it as CSV with --csv.
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import pandas as pd

import vosbench
from vosbench.methods.device import configure_threads, resolve_device
from vosbench.methods.runner import _segment_and_mark, cpu_model, method_identity
from vosbench.tracks.params import Track


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["stm", "osvos", "masktrack", "flow-warp", "first-frame"])
    parser.add_argument("--gt", type=Path, default=None, help="dataset root (default: the embedded dataset)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--sequences", nargs="+", default=None, help="only these sequences")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    threads = configure_threads(args.threads)
    if args.gt is None:
        dataset = vosbench.embedded_dataset(split=args.split)
    else:
        dataset = vosbench.open_dataset(None, args.gt, split=args.split)
    if args.sequences:
        dataset = vosbench.open_dataset(dataset.kind, dataset.root, split=args.split, sequences=args.sequences)
    where = f"{cpu_model()} ({threads} thread(s))" if device == "cpu" else f"{device}"
    print(f"dataset: {dataset.describe()}; device: {where}; {platform.python_version()}", file=sys.stderr)
    rows = []
    for name in args.methods:
        method = vosbench.load_method(name, device=device)
        identity = method_identity(method)
        with tempfile.TemporaryDirectory() as tmp:
            for sequence in dataset.sequence_names():
                frames = dataset.frame_names(sequence)
                seconds, objects = _segment_and_mark(method, dataset, sequence, frames, Path(tmp) / sequence,
                                                     Track.SEMI, identity)
                finetune = getattr(method, "last_finetune_seconds", None)
                rows.append({"method": name, "device": where, "sequence": sequence, "frames": len(frames),
                             "objects": objects, "seconds": seconds,
                             "finetune_seconds": float(finetune) if finetune is not None else 0.0})
                print(f"{name} {sequence}: {seconds:.1f} s for {len(frames)} frames", file=sys.stderr)
    table = pd.DataFrame(rows)
    summary = table.groupby("method", sort=False).agg(frames=("frames", "sum"), sequences=("sequence", "count"),
                                                     seconds=("seconds", "sum"),
                                                     finetune_seconds=("finetune_seconds", "sum"))
    summary["s/frame"] = summary["seconds"] / summary["frames"]
    summary["s/sequence"] = summary["seconds"] / summary["sequences"]
    summary["fine-tuning s/sequence"] = summary["finetune_seconds"] / summary["sequences"]
    print(summary[["s/frame", "s/sequence", "fine-tuning s/sequence", "frames", "sequences"]].round(3)
          .to_string())
    if args.csv is not None:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
