"""The interactive leaderboard: play the DAVIS interactive protocol with registered interactive methods
and write ``leaderboards/<dataset>-<split>-interactive.{csv,md,json}`` with a J&F-versus-time plot.

Two steps, so that each row can be played (and resumed) on its own::

    python benchmarks/interactive_leaderboard.py play --gt DAVIS2016_ROOT --label s2m-stm --method s2m-stm
    python benchmarks/interactive_leaderboard.py play --gt DAVIS2016_ROOT --label "s2m-stm, GrabCut step" \
        --method s2m-stm --option interaction='"grabcut"'
    python benchmarks/interactive_leaderboard.py write --runs runs/interactive --out leaderboards

`play` runs the session with the official robot and the framework's budget rule (8 interactions,
240 s per object) and keeps every finished sample in ``<runs>/<label>/.checkpoint`` (a rerun resumes).
The clock of the budget and of the curve is the method's *CPU time* (``time.process_time`` of this
process, torch on `--threads` threads) by default: on a shared machine the wall clock measures the
other jobs as much as the method. ``--clock wall`` uses the wall clock, as the framework does; the
wall seconds of every answer are recorded either way and reported beside.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from vosbench.io.atomic import atomic_write
from vosbench.io.factory import open_dataset
from vosbench.metrics.interactive import Curve
from vosbench.methods.registry import check_options, load_method
from vosbench.tracks.interactive.report import SampleInfo, per_interaction_means, summarize
from vosbench.tracks.interactive.session import SessionParams, find_samples, run_session

log = logging.getLogger("interactive_leaderboard")

CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
CLOCK_WORDS = {"cpu": "method CPU seconds (time.process_time)", "wall": "method wall-clock seconds"}

# Published interactive figures, quoted: other data set (DAVIS 2017 val, multi-object), GPUs, human
# first scribbles; never to be compared with the rows above as equals.
PUBLISHED = [
    {"method": "MiVOS (full model)", "dataset": "DAVIS 2017 val", "AUC": 0.879, "J&F@60s": 0.885,
     "device": "RTX 2080Ti", "source": "https://github.com/hkchengrex/MiVOS (README, DAVIS Interactive Track)"},
    {"method": "MiVOS baseline (no top-k, no BL30K, no learned fusion)", "dataset": "DAVIS 2017 val",
     "AUC": 0.860, "J&F@60s": 0.866, "device": "RTX 2080Ti",
     "source": "https://github.com/hkchengrex/MiVOS (README, DAVIS Interactive Track)"},
]


def slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_")


class WallTimer:
    """Wraps an interactive method and records the wall seconds of each answer."""

    def __init__(self, method):
        self.method = method
        self.name = method.name
        self.wall: list[float] = []

    def interact(self, video, scribbles, previous_masks):
        start = time.perf_counter()
        try:
            return self.method.interact(video, scribbles, previous_masks)
        finally:
            self.wall.append(time.perf_counter() - start)


def play(args: argparse.Namespace) -> int:
    from vosbench.methods.device import configure_threads

    configure_threads(args.threads)     # every method set up after this keeps that many torch threads
    options = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.option)}
    check_options(args.method, options)
    method = load_method(args.method, device=args.device, **options)
    dataset = open_dataset(args.dataset, args.gt, split=args.split, resolution=args.resolution)
    samples = find_samples(dataset, args.scribbles, sequences=args.sequences)
    params = SessionParams(max_interactions=args.max_interactions, max_time=args.max_time, seed=args.seed)
    folder = Path(args.runs) / slug(args.label)
    folder.mkdir(parents=True, exist_ok=True)
    timer = WallTimer(method)
    reports, infos = [], []
    for sample in samples:
        key = f"{sample.sequence}#{sample.scribble_idx}"
        timer.wall = []
        wall_path = folder / "wall_seconds" / f"{sample.sequence}__{sample.scribble_idx:03d}.json"
        result = run_session(dataset, timer, params, samples=[sample], clock=CLOCKS[args.clock],
                             checkpoint_dir=folder / ".checkpoint", progress=False,
                             session_id=f"{slug(args.label)}-seed{args.seed}")
        if timer.wall:    # played now, not taken from the checkpoint
            atomic_write(wall_path, json.dumps(timer.wall))
        reports.append(result.report)
        infos += result.samples
        jf = result.report.groupby("interaction")["j_and_f"].mean()
        log.info("%s: J&F per interaction %s; %s s", key, np.round(jf.to_numpy(), 3).tolist(),
                 np.round(result.report.groupby("interaction")["timing"].first().to_numpy(), 1).tolist())
    report = pd.concat([r for r in reports if len(r)], ignore_index=True)
    summary, _ = summarize(report, infos, params.max_interactions, params.max_time, params.threshold)
    atomic_write(folder / "report.csv", report.to_csv(index=False, float_format="%.17g"))
    command = ["python benchmarks/interactive_leaderboard.py play --gt ROOT", f"--dataset {args.dataset}",
               f"--split {args.split}", f"--label '{args.label}'", f"--method {args.method}"]
    command += [f"--option '{o}'" for o in args.option]
    command += [f"--clock {args.clock}", f"--threads {args.threads}", f"--seed {args.seed}"]
    row = {"label": args.label, "method": args.method, "options": getattr(method, "options", options),
           "command": " ".join(command),
           "device": str(getattr(method, "device", args.device)), "threads": args.threads, "clock": args.clock,
           "dataset": args.dataset, "split": args.split, "resolution": args.resolution,
           "max_interactions": params.max_interactions, "max_time": params.max_time, "seed": params.seed,
           "samples": [[i.sequence, i.scribble_idx, i.nb_objects] for i in infos],
           "first_scribbles_from_files": sum(s.first_scribble is not None for s in samples),
           "date": dt.date.today().isoformat(), "summary": summary}
    atomic_write(folder / "row.json", json.dumps(row, indent=1, sort_keys=True, default=str))
    print(f"{args.label}: AUC {summary['auc']:.3f}  J&F@60s {summary['metric_at_threshold']['J_AND_F']:.3f}")
    return 0


def _row_table(folder: Path) -> dict:
    row = json.loads((folder / "row.json").read_text())
    report = pd.read_csv(folder / "report.csv")
    infos = [SampleInfo(s, int(i), int(n)) for s, i, n in row["samples"]]
    _, jf_after = per_interaction_means(report, infos, int(row["max_interactions"]))
    played = {f"{s}__{int(i):03d}" for s, i, _ in row["samples"]}
    wall = [w for p in sorted((folder / "wall_seconds").glob("*.json")) if p.stem in played
            for w in json.loads(p.read_text())]
    per_answer = report.groupby(["sequence", "scribble_idx", "interaction"])["timing"].first()
    summary = row["summary"]
    out = {"method": row["label"], "source": "this run", "AUC": summary["auc"],
           "J&F@60s": summary["metric_at_threshold"]["J_AND_F"], "final J&F": float(jf_after[-1]),
           "s/interaction": float(per_answer.mean()), "wall s/interaction": float(np.mean(wall)) if wall else None,
           "clock": row["clock"], "device": f"{row['device']}, {row['threads']} thread(s)",
           "n_samples": len(infos), "registered method": row["method"],
           "options": json.dumps(row["options"], sort_keys=True, default=str), "date": row["date"]}
    for k, v in enumerate(jf_after, start=1):
        out[f"J&F after {k}"] = float(v)
    curve = Curve(np.asarray(summary["curve"]["time"]), np.asarray(summary["curve"]["J_AND_F"]))
    return {"row": out, "curve": curve, "meta": row}


def write(args: argparse.Namespace) -> int:
    from vosbench.reports.interactive_plots import plot_curve

    folders = sorted(p for p in Path(args.runs).iterdir() if (p / "row.json").is_file())
    if not folders:
        raise SystemExit(f"no played rows (row.json) under {args.runs}")
    tables = [_row_table(p) for p in folders]
    order = {label: k for k, label in enumerate(args.order or [])}
    tables.sort(key=lambda t: (order.get(t["row"]["method"], len(order)), -t["row"]["AUC"]))
    rows = pd.DataFrame([t["row"] for t in tables])
    meta = tables[0]["meta"]
    stem = f"{meta['dataset']}-{meta['split']}-interactive"
    out = Path(args.out)
    clocks = sorted({t["meta"]["clock"] for t in tables})
    from_files = sum(t["meta"].get("first_scribbles_from_files", 0) for t in tables)
    first = ("first scribbles from the data set's scribble files" if from_files else
             "one sample per sequence, the first scribble drawn by the robot on an empty prediction (no scribble "
             "files for this set)")
    protocol = (f"{meta['dataset']} {meta['split']} ({meta['resolution']}), {first}; "
                f"robot with the official defaults, seed {meta['seed']}; {meta['max_interactions']} interactions, "
                f"{meta['max_time']:g} s per object; next frame: lowest J&F among the frames not yet scribbled; "
                f"time axis and budget: {', '.join(CLOCK_WORDS[c] for c in clocks)}; J&F@60s and AUC as the "
                f"DAVIS interactive framework computes them")
    atomic_write(out / f"{stem}.csv", rows.to_csv(index=False, float_format="%.6g"))
    plot = plot_curve({t["row"]["method"]: t["curve"] for t in tables}, out / f"{stem}.png", threshold=60.0)
    payload = {"dataset": meta["dataset"], "split": meta["split"], "track": "interactive", "protocol": protocol,
               "rows": rows.replace({np.nan: None}).to_dict(orient="records"),
               "curves": {t["row"]["method"]: {"time": t["curve"].time.tolist(), "J_AND_F": t["curve"].value.tolist()}
                          for t in tables},
               "published_quoted": PUBLISHED, "plot": plot.name, "notes": list(args.note)}
    atomic_write(out / f"{stem}.json", json.dumps(payload, indent=1) + "\n")
    n_int = int(meta["max_interactions"])
    lines = [f"# Leaderboard: {meta['dataset']} {meta['split']}, interactive track", "", f"Protocol: {protocol}.", "",
             "Sources: *this run* = played by `benchmarks/interactive_leaderboard.py` on this machine (commands "
             "below). AUC, J&F@60s, J&F: higher is better; s/interaction (the clock above, mean over answers) "
             "and wall s/interaction (wall clock of the same answers, other jobs included): lower is better.", "",
             *([ "Notes:", ""] + [f"- {n}" for n in args.note] + [""] if args.note else []),
             "## Leaderboard", "",
             "| method | source | AUC | J&F@60s | final J&F | s/interaction | wall s/interaction | device | options |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in rows.to_dict(orient="records"):
        wall = "–" if r["wall s/interaction"] is None or pd.isna(r["wall s/interaction"]) else f"{r['wall s/interaction']:.2f}"
        lines.append(f"| {r['method']} | {r['source']} | {r['AUC']:.3f} | {r['J&F@60s']:.3f} | {r['final J&F']:.3f} | "
                     f"{r['s/interaction']:.2f} | {wall} | {r['device']} | {r['options']} |")
    lines += ["", "## Mean J&F after each interaction", "",
              "Over every (sample, object); a sample that ran out of budget keeps its last masks (the framework's rule).",
              "", "| method | " + " | ".join(str(k) for k in range(1, n_int + 1)) + " |",
              "| --- | " + " | ".join("---:" for _ in range(n_int)) + " |"]
    for r in rows.to_dict(orient="records"):
        lines.append(f"| {r['method']} | " + " | ".join(f"{r[f'J&F after {k}']:.3f}" for k in range(1, n_int + 1)) + " |")
    lines += ["", f"![J&F against time]({plot.name})", "", "Commands:", "", "```bash"]
    lines += [t["meta"].get("command", "(not recorded)") for t in tables]
    lines += [f"python benchmarks/interactive_leaderboard.py write --runs RUNS --out {args.out}", "```", "",
              "## Published interactive figures (quoted, not comparable)", "",
              "Other data set (DAVIS 2017 val: multi-object, human first scribbles, three per sequence), GPUs, "
              "networks trained on thousands of videos; quoted from the authors, not computed here. They are not "
              "ranked with the rows above.", "",
              "| method | data set | AUC | J&F@60s | device | source |", "| --- | --- | ---: | ---: | --- | --- |"]
    for p in PUBLISHED:
        lines.append(f"| {p['method']} | {p['dataset']} | {p['AUC']:.3f} | {p['J&F@60s']:.3f} | {p['device']} | {p['source']} |")
    atomic_write(out / f"{stem}.md", "\n".join(lines) + "\n")
    print("\n".join(lines[:len(rows) + 12]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("play", help="play one row's sessions (resumable)")
    p.add_argument("--gt", type=Path, required=True)
    p.add_argument("--dataset", default="davis2016")
    p.add_argument("--split", default="val")
    p.add_argument("--resolution", default="480p")
    p.add_argument("--scribbles", type=Path, default=None)
    p.add_argument("--sequences", nargs="+", default=None)
    p.add_argument("--label", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--option", action="append", default=[], help="KEY=JSON constructor option (repeatable)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    p.add_argument("--max-interactions", type=int, default=8)
    p.add_argument("--max-time", type=float, default=240.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=Path, default=Path("runs/interactive"))
    p.set_defaults(func=play)
    w = sub.add_parser("write", help="write the leaderboard from the played rows")
    w.add_argument("--runs", type=Path, default=Path("runs/interactive"))
    w.add_argument("--out", type=Path, default=Path("leaderboards"))
    w.add_argument("--order", nargs="*", default=None, help="labels in the order of the table (default: by AUC)")
    w.add_argument("--note", action="append", default=[], help="a line for the notes above the table (repeatable)")
    w.set_defaults(func=write)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
