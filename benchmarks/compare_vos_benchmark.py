"""Time vosbench against vos-benchmark (PyPI) on the same data, in one run.

    python benchmarks/compare_vos_benchmark.py                      # real DAVIS masks tiled to ~2,000 frames
    python benchmarks/compare_vos_benchmark.py --frames-total 400   # a quick look
    python benchmarks/compare_vos_benchmark.py --synthetic          # the generated ellipses instead

By default the data is shaped like real DAVIS masks because it is real DAVIS masks:
the ground truth of the DAVIS 2016 val sequences and a published method's result
masks for them (``--davis2016``, default ../shared/data/davis2016; ``--method``,
default osvos), re-encoded as DAVIS palette PNGs of ids 0/1 (both tools then read
the same ids) and tiled -- the 20 sequences, then again under new names -- until
``--frames-total`` frames (default 2,000) are reached, in a temporary
DAVIS-2017-layout folder (Annotations/480p, ImageSets/2017/val.txt).

``--synthetic`` uses a small seeded generator instead: moving, growing ellipses
and blobs, several objects per sequence; the predictions are the ground truth
disturbed (shifted, resized, speckled, sometimes a frame missed), using only ids
of the first frame. Ellipses have short, smooth boundaries, so they flatter any
tool whose cost follows the boundary length: quote the real-data figure.

Both tools score the same objects over the same frames (first and last frame
excluded). vos-benchmark's per-object J and F are compared with vosbench's
per-object J-Mean and F-Mean before any time is reported, and the run fails if
they differ.

Both tools run with the same number of processes, each timed end to end as a
user runs it: a fresh Python process per run (interpreter, imports, worker
pool start-up and exit included) -- `python -m vosbench evaluate ... --jobs N --no-cache` and
vos-benchmark's `benchmark(..., num_processes=N)` -- alternating, `--repeat`
times; the median is reported. The numbers are compared in this process
first. `--profile` adds where vosbench's time goes, measured in one process:
PNG decoding alone, the J/F kernels alone, and the rest.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


# ----------------------------------------------------------------------------- data
def _ellipse(canvas: np.ndarray, centre, axes, angle: float, value: int) -> None:
    cv2.ellipse(canvas, (int(round(centre[0])), int(round(centre[1]))),
                (max(int(round(axes[0])), 2), max(int(round(axes[1])), 2)), angle, 0, 360, int(value), -1)


def make_sequence(rng: np.random.Generator, n_frames: int, n_objects: int, height: int, width: int):
    """Ground truth and a disturbed prediction of one sequence: two lists of (H, W) uint8 id maps."""
    scale = height / 480.0
    objects = []
    for k in range(1, n_objects + 1):
        objects.append({
            "id": k,
            "centre": np.array([rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height]),
            "velocity": rng.normal(0, 3.0 * scale, size=2),
            "axes": np.array([rng.uniform(20, 90), rng.uniform(15, 70)]) * scale,
            "growth": rng.uniform(-0.004, 0.004),
            "angle": rng.uniform(0, 180),
            "spin": rng.normal(0, 1.5),
            # a second lobe makes some objects non-convex blobs
            "lobe": rng.uniform(0.3, 0.7) if rng.random() < 0.5 else 0.0,
        })
    gts, preds = [], []
    for t in range(n_frames):
        gt = np.zeros((height, width), np.uint8)
        pred = np.zeros_like(gt)
        for obj in objects:
            centre = obj["centre"] + obj["velocity"] * t
            centre = np.clip(centre, [0.1 * width, 0.1 * height], [0.9 * width, 0.9 * height])
            axes = obj["axes"] * (1 + obj["growth"] * t)
            angle = obj["angle"] + obj["spin"] * t
            _ellipse(gt, centre, axes, angle, obj["id"])
            if obj["lobe"]:
                offset = axes[0] * np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
                _ellipse(gt, centre + offset, axes * obj["lobe"], angle + 60, obj["id"])
            # The prediction: the same shape, displaced and resized a little; now and then missed.
            if rng.random() < 0.03:
                continue
            jitter = rng.normal(0, 2.5 * scale, size=2)
            p_axes = axes * rng.uniform(0.85, 1.12, size=2)
            _ellipse(pred, centre + jitter, p_axes, angle + rng.normal(0, 4), obj["id"])
            if obj["lobe"] and rng.random() < 0.8:
                offset = axes[0] * np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
                _ellipse(pred, centre + offset + jitter, axes * obj["lobe"], angle + 60, obj["id"])
        # Speckle: a few small false-positive islands and holes.
        for _ in range(rng.integers(0, 4)):
            y, x = rng.integers(0, height - 6), rng.integers(0, width - 6)
            pred[y:y + rng.integers(2, 6), x:x + rng.integers(2, 6)] = rng.integers(0, n_objects + 1)
        gts.append(gt)
        preds.append(pred)
    return gts, preds


def write_palette_png(path: Path, ids: np.ndarray, palette: list[int]) -> None:
    from PIL import Image

    image = Image.fromarray(ids, mode="P")
    image.putpalette(palette)
    image.save(path)


def make_dataset(root: Path, sequences: int, frames: int, objects: int, height: int, width: int, seed: int) -> Path:
    """Write a DAVIS-2017-layout ground truth under root/davis and predictions under root/results."""
    from vosbench.io.masks import DAVIS_PALETTE

    palette = DAVIS_PALETTE.ravel().tolist()
    rng = np.random.default_rng(seed)
    gt_root, pred_root = root / "davis", root / "results"
    names = [f"seq{i:03d}" for i in range(sequences)]
    for name in names:
        gts, preds = make_sequence(rng, frames, objects, height, width)
        gt_dir = gt_root / "Annotations" / "480p" / name
        pred_dir = pred_root / name
        gt_dir.mkdir(parents=True)
        pred_dir.mkdir(parents=True)
        for t, (gt, pred) in enumerate(zip(gts, preds)):
            write_palette_png(gt_dir / f"{t:05d}.png", gt, palette)
            write_palette_png(pred_dir / f"{t:05d}.png", pred, palette)
    (gt_root / "ImageSets" / "2017").mkdir(parents=True)
    (gt_root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(names) + "\n")
    return root


def make_davis_shaped(root: Path, davis2016: Path, method: str, frames_total: int) -> tuple[int, int]:
    """Real DAVIS 2016 val ground truth and `method`'s result masks, tiled to at least `frames_total` frames.

    Returns (sequences, frames) written."""
    from vosbench.io.masks import DAVIS_PALETTE, read_mask

    palette = DAVIS_PALETTE.ravel().tolist()
    split = davis2016 / "ImageSets" / "480p" / "val.txt"
    names = list(dict.fromkeys(Path(line.split()[0]).parent.name for line in split.read_text().splitlines()
                               if line.strip()))
    gt_root, pred_root = root / "davis", root / "results"
    written, n_frames, copy = [], 0, 0
    while n_frames < frames_total:
        for name in names:
            if n_frames >= frames_total:
                break
            out_name = name if copy == 0 else f"{name}-{copy + 1}"
            gt_dir, pred_dir = gt_root / "Annotations" / "480p" / out_name, pred_root / out_name
            gt_dir.mkdir(parents=True)
            pred_dir.mkdir(parents=True)
            for gt_path in sorted((davis2016 / "Annotations" / "480p" / name).glob("*.png")):
                pred_path = davis2016 / "results" / method / name / gt_path.name
                write_palette_png(gt_dir / gt_path.name, read_mask(gt_path, binary=True), palette)
                pred = read_mask(pred_path, binary=True) if pred_path.is_file() else \
                    np.zeros_like(read_mask(gt_path, binary=True))
                write_palette_png(pred_dir / gt_path.name, pred, palette)
                n_frames += 1
            written.append(out_name)
        copy += 1
    (gt_root / "ImageSets" / "2017").mkdir(parents=True)
    (gt_root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(written) + "\n")
    return len(written), n_frames


# ----------------------------------------------------------------------------- runs
def run_vosbench(root: Path, processes: int):
    import vosbench

    return vosbench.evaluate(root / "davis", root / "results", dataset="davis2017", track="semi",
                             jobs=processes, cache=False, progress=False)


def run_vos_benchmark(root: Path, processes: int):
    from vos_benchmark.benchmark import benchmark

    with contextlib.redirect_stdout(io.StringIO()):
        _, _, _, per_object = benchmark([str(root / "davis" / "Annotations" / "480p")], [str(root / "results")],
                                        num_processes=processes, verbose=False)
    return per_object[0]


CPU_SECONDS: dict[str, list[float]] = {"vosbench": [], "vos-benchmark": []}


def timed_subprocess(code: str | list[str], tool: str | None = None) -> float:
    """Wall time of a fresh Python process running `code` (a program; or a list: the arguments of
    `python`), failing loudly if it fails. The CPU seconds of the process and of its worker processes
    go to CPU_SECONDS[tool]: on a busy machine they show what each tool costs, while the wall times
    also hold the waits for a core."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    arguments = ["-c", code] if isinstance(code, str) else list(code)
    subprocess.run([sys.executable, *arguments], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if tool is not None:
        CPU_SECONDS[tool].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


def time_vos_benchmark(root: Path, processes: int) -> float:
    # It writes results.csv into the prediction folder; the folder is scratch data here.
    return timed_subprocess(
        "import contextlib, io\n"
        "from vos_benchmark.benchmark import benchmark\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    benchmark([{str(root / 'davis' / 'Annotations' / '480p')!r}], [{str(root / 'results')!r}], "
        f"num_processes={processes}, verbose=False)\n", tool="vos-benchmark")


def time_vosbench(root: Path, processes: int) -> float:
    out = root / "vosbench-out"
    # As a user runs it: `python -m vosbench` is the `vosbench` executable's entry point.
    return timed_subprocess(
        ["-m", "vosbench", "-q", "evaluate", "--gt", str(root / "davis"), "--results", str(root / "results"),
         "--jobs", str(processes), "--no-cache", "--no-progress", "--out", str(out)], tool="vosbench")


def compile_both_tools() -> None:
    """Byte-compile both tools' modules, as `pip install` does. An editable install run with
    PYTHONDONTWRITEBYTECODE=1 has none, and would compile vosbench's sources again in every process
    (the main one and each worker: about 0.1 s of a run here) while vos-benchmark's came compiled."""
    import compileall

    import vos_benchmark

    import vosbench

    for package in (vosbench, vos_benchmark):
        folder = Path(package.__file__).resolve().parent
        if not compileall.compile_dir(folder, quiet=1):
            raise SystemExit(f"could not byte-compile {folder}")
        print(f"byte-compiled {package.__name__} in {folder}")


def compare(result, theirs) -> tuple[int, float]:
    """Largest difference between vosbench's per-object means and vos-benchmark's (which are x100)."""
    ours = result.per_object.set_index(["sequence", "object_id"])
    compared, worst = 0, 0.0
    for sequence, (iou, boundary) in theirs.items():
        for object_id in iou:
            row = ours.loc[(sequence, int(object_id))]
            worst = max(worst, abs(row["J-Mean"] * 100 - iou[object_id]), abs(row["F-Mean"] * 100 - boundary[object_id]))
            compared += 1
    if compared != len(ours):
        raise SystemExit(f"vos-benchmark scored {compared} objects, vosbench {len(ours)}: the data does not fit both")
    return compared, worst


def profile_vosbench(root: Path) -> dict[str, float]:
    """Where vosbench's time goes, in this one process: decoding, kernels, the rest."""
    from vosbench.io.allocator import keep_freed_memory_in_heap
    from vosbench.io.factory import open_dataset
    from vosbench.io.masks import read_mask_view
    from vosbench.metrics.frames import object_frame_scores
    from vosbench.tracks.params import EvalParams
    from vosbench.tracks.validate import build_jobs

    # As every scoring worker does: otherwise each decoded frame is faulted in afresh, and decoding
    # looks several times slower here than it is in a run.
    keep_freed_memory_in_heap()
    dataset = open_dataset("davis2017", root / "davis")
    start = time.perf_counter()
    report = build_jobs(dataset, root / "results", EvalParams())
    validate = time.perf_counter() - start
    decode = kernels = 0.0
    n_frames = n_object_frames = 0
    for job in report.jobs:
        # Decoding as scoring does it: one mask at a time, each dropped before the next (holding a whole
        # sequence's masks would time fresh memory instead).
        paths = [p for p in (*job.gt_paths, *job.pred_paths) if p is not None]
        start = time.perf_counter()
        for path in paths:
            read_mask_view(path)
        decode += time.perf_counter() - start
        gt = np.stack([read_mask_view(p) for p in job.gt_paths])
        pred = np.stack([read_mask_view(p) if p is not None else np.zeros(gt.shape[1:], np.uint8)
                         for p in job.pred_paths])
        ids = list(range(1, int(gt[0][gt[0] != 255].max()) + 1))
        start = time.perf_counter()
        object_frame_scores(gt[1:-1], pred[1:-1], ids)
        kernels += time.perf_counter() - start
        n_frames += len(job.frames)
        n_object_frames += len(ids) * (len(job.frames) - 2)
    start = time.perf_counter()
    run_vosbench(root, 1)
    total = time.perf_counter() - start
    return {"validate": validate, "decode": decode, "kernels": kernels, "total_1proc": total,
            "n_masks": 2 * n_frames, "n_object_frames": n_object_frames}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis2016", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
                        / "davis2016", help="DAVIS 2016 folder with results/<method>/ (the real-data default)")
    parser.add_argument("--method", default="osvos", help="published method whose masks are the predictions")
    parser.add_argument("--frames-total", type=int, default=2000, help="real data: tile the val sequences to this")
    parser.add_argument("--synthetic", action="store_true", help="generated ellipses instead of real DAVIS masks")
    parser.add_argument("--sequences", type=int, default=40, help="--synthetic: sequences")
    parser.add_argument("--frames", type=int, default=50, help="--synthetic: frames per sequence")
    parser.add_argument("--objects", type=int, default=5, help="--synthetic: objects per sequence")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=None, help="keep the generated data here (default: a temp dir)")
    parser.add_argument("--profile", action="store_true", help="also break vosbench's time down (one process)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="vosbench-bench-")) if args.data is None else args.data
    try:
        n_frames = args.sequences * args.frames
        if not (workdir / "davis").is_dir():
            start = time.perf_counter()
            if args.synthetic:
                make_dataset(workdir, args.sequences, args.frames, args.objects, args.height, args.width, args.seed)
                print(f"generated {args.sequences} sequences x {args.frames} frames x {args.objects} objects "
                      f"at {args.width}x{args.height} in {time.perf_counter() - start:.1f} s ({workdir})")
            else:
                if not (args.davis2016 / "results" / args.method).is_dir():
                    print(f"FAIL: no published masks at {args.davis2016 / 'results' / args.method} "
                          "(pass --davis2016, or --synthetic)", file=sys.stderr)
                    return 1
                n_seq, n_frames = make_davis_shaped(workdir, args.davis2016, args.method, args.frames_total)
                print(f"real DAVIS 2016 val masks ({args.method}) tiled: {n_seq} sequences, {n_frames} frames, "
                      f"854x480, in {time.perf_counter() - start:.1f} s ({workdir})")
        n_frames = sum(1 for _ in (workdir / "davis" / "Annotations" / "480p").glob("*/*.png"))
        compared, worst = compare(run_vosbench(workdir, args.processes), run_vos_benchmark(workdir, args.processes))
        print(f"numbers: {compared} objects compared, largest |difference| of J/F means (x100) = {worst:.3g}")
        if worst > 1e-7:
            print("FAIL: the two tools disagree", file=sys.stderr)
            return 1
        compile_both_tools()
        load_before = f"{os.getloadavg()[0]:.2f}"
        times = {"vosbench": [], "vos-benchmark": []}
        for _ in range(args.repeat):
            # Alternate the two so that a busy machine slows both alike.
            times["vos-benchmark"].append(time_vos_benchmark(workdir, args.processes))
            times["vosbench"].append(time_vosbench(workdir, args.processes))
        ours, base = statistics.median(times["vosbench"]), statistics.median(times["vos-benchmark"])
        print(f"vos-benchmark: {base:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times['vos-benchmark'])})")
        print(f"vosbench:      {ours:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times['vosbench'])})")
        cpu_ours, cpu_base = statistics.median(CPU_SECONDS["vosbench"]), statistics.median(CPU_SECONDS["vos-benchmark"])
        print(f"CPU seconds (process and workers), median: vos-benchmark {cpu_base:.2f}, vosbench {cpu_ours:.2f} "
              f"({cpu_base / cpu_ours:.1f}x less)")
        print(f"{n_frames} frames, {compared} objects, {args.processes} processes: "
              f"vosbench is {base / ours:.1f}x faster (load average before/after: {load_before} / "
              f"{os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs)")
        if args.profile:
            prof = profile_vosbench(workdir)
            rest = prof["total_1proc"] - prof["decode"] - prof["kernels"] - prof["validate"]
            print(f"profile, 1 process, {prof['total_1proc']:.2f} s in all:")
            print(f"  decode {prof['n_masks']} PNG masks: {prof['decode']:.2f} s "
                  f"({1e3 * prof['decode'] / prof['n_masks']:.2f} ms each)")
            print(f"  J/F kernels, {prof['n_object_frames']} object-frames: {prof['kernels']:.2f} s "
                  f"({1e6 * prof['kernels'] / prof['n_object_frames']:.0f} us each)")
            print(f"  validation (PNG headers, file lists): {prof['validate']:.2f} s")
            print(f"  the rest (statistics, tables, hashing): {rest:.2f} s")
    finally:
        if args.data is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
