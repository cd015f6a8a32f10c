"""Time vosbench's scribble robot against the DAVIS interactive framework's robot, on the same frames.

    python benchmarks/compare_robot.py --python37 PY37 --davis2016 ../shared/data/davis2016 [--cases 40]

PY37 is a Python with the DAVIS interactive challenges' stack and davisinteractive 1.0.4
(see tests/fixtures/interactive/make_robot_fixture.py for how to install it). Cases: real
DAVIS 2016 val frames with the published methods' masks as predictions (every method in
``results/``, frames spread over each sequence), one robot interaction each with the
framework's evaluation-service parameters. The framework's robot runs in a PY37
subprocess, vosbench's in this process, alternating `--repeat` times; each interaction is
timed alone (``time.perf_counter``) after a warm-up call, and the median over repeats is
kept. The scribbles are compared first (every point to 1e-9): the run fails if they differ.
Reported: total and median time per interaction and per scribble, and the ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OFFICIAL = r"""
import json, sys, time
import numpy as np
from davisinteractive.evaluation import service
from davisinteractive.robot import interactive_robot
data = np.load(sys.argv[1])
n = int(data["n"])
robot = interactive_robot.InteractiveScribblesRobot(**service.ROBOT_DEFAULT_PARAMETERS)
robot.interact("w", data["pred0"][None], data["gt0"][None], nb_objects=1, frame=0)   # warm-up
times, scribbles = [], []
for k in range(n):
    gt, pred = data["gt%d" % k], data["pred%d" % k]
    start = time.perf_counter()
    out = robot.interact("case", pred[None], gt[None], nb_objects=1, frame=0)
    times.append(time.perf_counter() - start)
    scribbles.append([[s["object_id"], s["path"]] for s in out["scribbles"][0]])
json.dump({"times": times, "scribbles": scribbles}, open(sys.argv[2], "w"))
"""


def pick_cases(root: Path, n_cases: int) -> list[tuple[str, str, str]]:
    sequences = sorted({line.split()[0].split("/")[-2]
                        for line in (root / "ImageSets" / "480p" / "val.txt").read_text().splitlines() if line})
    methods = sorted(p.name for p in (root / "results").iterdir() if p.is_dir())
    cases = []
    k = 0
    while len(cases) < n_cases:
        seq = sequences[k % len(sequences)]
        method = methods[(k // len(sequences) + k) % len(methods)]
        frames = sorted((root / "Annotations" / "480p" / seq).glob("*.png"))
        frame = frames[1 + (11 * k) % (len(frames) - 1)].name
        cases.append((method, seq, frame))
        k += 1
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python37", required=True, help="Python with the challenges' stack and davisinteractive")
    parser.add_argument("--davis2016", type=Path, required=True, help="DAVIS 2016 root with results/")
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    from vosbench.io import read_mask
    from vosbench.tracks.interactive.robot import ScribbleRobot

    cases = pick_cases(args.davis2016, args.cases)
    inputs = []
    for method, seq, frame in cases:
        gt = read_mask(args.davis2016 / "Annotations" / "480p" / seq / frame, binary=True)
        pred = read_mask(args.davis2016 / "results" / method / seq / frame, binary=True)
        inputs.append((gt, pred))
    robot = ScribbleRobot()
    robot.interact("w", inputs[0][1][None], inputs[0][0][None], nb_objects=1, frame=0)   # warm-up
    official_runs, ours_runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "cases.npz"
        arrays = {"n": np.asarray(len(inputs))}
        for k, (gt, pred) in enumerate(inputs):
            arrays[f"gt{k}"], arrays[f"pred{k}"] = gt, pred
        np.savez(data, **arrays)
        for r in range(args.repeat):
            answer = Path(tmp) / f"official{r}.json"
            env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
            subprocess.run([args.python37, "-c", OFFICIAL, str(data), str(answer)], check=True, env=env,
                           stderr=subprocess.DEVNULL)
            official = json.loads(answer.read_text())
            official_runs.append(official["times"])
            times, drawn = [], []
            for gt, pred in inputs:
                start = time.perf_counter()
                out = robot.interact("case", pred[None], gt[None], nb_objects=1, frame=0)
                times.append(time.perf_counter() - start)
                drawn.append(out["scribbles"][0])
            ours_runs.append(times)
            for k, (expected, got) in enumerate(zip(official["scribbles"], drawn)):
                same = len(expected) == len(got) and all(
                    obj == s["object_id"] and np.allclose(path, s["path"], rtol=0, atol=1e-9)
                    for (obj, path), s in zip(expected, got))
                if not same:
                    print(f"case {cases[k]}: vosbench's scribbles differ from the framework's", file=sys.stderr)
                    return 1
    n_scribbles = sum(len(s) for s in official["scribbles"])
    official_t = np.median(np.asarray(official_runs), axis=0)
    ours_t = np.median(np.asarray(ours_runs), axis=0)
    print(f"{len(cases)} interactions, {n_scribbles} scribbles (identical), median of {args.repeat} runs")
    print(f"davisinteractive 1.0.4 robot: {official_t.sum():.2f} s in all, {np.median(official_t) * 1e3:.0f} ms "
          f"median per interaction, {official_t.sum() / n_scribbles * 1e3:.0f} ms per scribble")
    print(f"vosbench robot:               {ours_t.sum():.2f} s in all, {np.median(ours_t) * 1e3:.0f} ms "
          f"median per interaction, {ours_t.sum() / n_scribbles * 1e3:.0f} ms per scribble")
    print(f"speed ratio (total): {official_t.sum() / ours_t.sum():.1f}x; median of per-interaction ratios: "
          f"{np.median(official_t / ours_t):.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
