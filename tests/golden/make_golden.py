"""Record the official evaluators' numbers on generated data in each benchmark's layout.

Run at development time, never by the tests (the tests read the JSON this writes):

    python tests/golden/make_golden.py BENCH --oracle-python PY --oracle-src DIR [--compiled]

BENCH is lvos, sav, mosev2, vost or mose. The data are made by ``vosbench generate --layout BENCH
--results ...`` with the seed and long-video length in `SETTINGS` (the tests make the same data
again). The official evaluator runs in its own interpreter (PY: a virtual environment outside this
repository with numpy, scipy, scikit-image, opencv-python-headless, pillow, pandas, tqdm, and
cython for the LVOS compiled path) from a checkout of its public repository (DIR):

    lvos    LingyiHongfd/lvos-evaluation  (DIR: the repository root; --compiled after
            ``python setup.py build_ext --inplace`` in lvos/metric_ops/_get_binary_c)
    sav     facebookresearch/sam2         (DIR: its sav_dataset folder)
    mosev2  henghuiding/MOSE-api          (DIR: MOSEv2/sam2_rcms/tools)
    vost    TRI-ML/VOST                   (DIR: its evaluation folder)
    mose    davisvideochallenge/davis2017-evaluation (DIR: the repository root; MOSEv1's server
            scores with the DAVIS 2017 rules; the flat MOSE folders are linked into a DAVIS tree)

Nothing of the oracles is copied here: the driver below imports them and prints their numbers
at full precision (as JSON) besides what they print themselves. Shims: LVOS reads its unseen and
unsupervised lists from the working directory, so the driver runs in a folder holding the
dataset's unseen_videos.txt and an empty unsupervised_videos.txt; VOST uses ``np.bool`` (removed
from numpy 1.24), so its driver sets ``np.bool = bool`` first. LVOS and VOST assign one-element
arrays to array elements, which numpy 2 refuses: the oracle environment has numpy 1.24.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETTINGS = {"seed": 19, "long_frames": 1000}

DRIVERS = {
    "lvos": r'''
import json, sys, os
sys.path.insert(0, SRC)
import numpy as np
from lvos.evaluation import LVOSEvaluation
ev = LVOSEvaluation(lvos_root=GT, task="semi-supervised", gt_set="valid")
res, seen, unseen = ev.evaluate(RES)
J, F, V = res["J"], res["F"], res["V"]
g = {"J&F-Mean": ((np.mean(seen["J"]["M"]) + np.mean(seen["F"]["M"])) + (np.mean(unseen["J"]["M"]) + np.mean(unseen["F"]["M"]))) / 4.0,
     "J-Mean": (np.mean(seen["J"]["M"]) + np.mean(unseen["J"]["M"])) / 2, "J-seen-Mean": np.mean(seen["J"]["M"]),
     "J-unseen-Mean": np.mean(unseen["J"]["M"]), "F-Mean": (np.mean(seen["F"]["M"]) + np.mean(unseen["F"]["M"])) / 2,
     "F-seen-Mean": np.mean(seen["F"]["M"]), "F-unseen-Mean": np.mean(unseen["F"]["M"]),
     "V-Mean": (np.mean(seen["V"]["M"]) + np.mean(unseen["V"]["M"])) / 2, "V-seen-Mean": np.mean(seen["V"]["M"]),
     "V-unseen-Mean": np.mean(unseen["V"]["M"])}
objs = {k: {"J-Mean": J["M_per_object"][k], "F-Mean": F["M_per_object"][k], "V-Mean": V["M_per_object"][k]}
        for k in J["M_per_object"]}
from lvos import metrics
print("ORACLE-JSON" + json.dumps({"global": {k: float(v) for k, v in g.items()},
                                  "per_object": {k: {c: float(x) for c, x in v.items()} for k, v in objs.items()},
                                  "compiled_boundary": bool(metrics.use_cython)}))
''',
    "sav": r'''
import json, sys
sys.path.insert(0, SRC)
from utils.sav_benchmark import benchmark
jf, j, f, objects = benchmark([GT], [RES], True, 1, verbose=True, skip_first_and_last=True)
per = {f"{name}_{obj}": {"J-Mean": iou[obj], "F-Mean": bf[obj]} for name, (iou, bf) in objects[0].items() for obj in iou}
print("ORACLE-JSON" + json.dumps({"global": {"J&F-Mean": float(jf[0]), "J-Mean": float(j[0]), "F-Mean": float(f[0])},
                                  "per_object": {k: {c: float(x) for c, x in v.items()} for k, v in per.items()}}))
''',
    "mosev2": r'''
import json, sys, os
sys.argv = ["score.py", "--meta", os.path.join(GT, "meta.json"), "--ann", os.path.join(GT, "Annotations"),
            "--pred", RES, "--output", OUT]
sys.path.insert(0, SRC)
import numpy as np
import score
score.main()                      # the official run and its printed (2-decimal) numbers
meta = json.load(open(os.path.join(GT, "meta.json")))["videos"]
per = {}
for vid in sorted(os.listdir(os.path.join(GT, "Annotations"))):
    n = meta[vid]["length"]
    for obj in meta[vid]["objects"]:
        chunk = score.process_video_chunk(vid, meta, RES, os.path.join(GT, "Annotations"), 1, n - 1, obj, 0) \
            if n > 2 else None
        r = score.merge_chunk_results([chunk] if chunk else [], vid, obj)
        per[f"{vid}_{obj}"] = r
cols = ["J", "F_new", "F", "disappear_J", "disappear_F_new", "reappear_J", "reappear_F_new"]
def m(i):
    v = [r[i] for r in per.values() if r[i] is not None]
    return float(np.mean(v))
g = {"J": m(0), "F_new": m(1), "F": m(2), "disappear_J": m(3), "disappear_F_new": m(4), "reappear_J": m(5),
     "reappear_F_new": m(6)}
g["J&F_new"] = (g["J"] + g["F_new"]) / 2; g["J&F"] = (g["J"] + g["F"]) / 2
g["disappear_J&F_new"] = (g["disappear_J"] + g["disappear_F_new"]) / 2
g["reappear_J&F_new"] = (g["reappear_J"] + g["reappear_F_new"]) / 2
printed = dict(line.split(": ", 1) for line in open(os.path.join(OUT, "scores.txt")).read().splitlines())
print("ORACLE-JSON" + json.dumps({"global": g, "printed": printed,
      "per_object": {k: {c: (None if r[i] is None else float(r[i])) for i, c in enumerate(cols)} for k, r in per.items()}}))
''',
    "vost": r'''
import json, sys, os
os.chdir(SRC); sys.path.insert(0, SRC)
import numpy as np
np.bool = bool  # shim: the package uses np.bool, removed in numpy 1.24 (the alias meant the builtin bool)
from source.evaluation import Evaluation
res = Evaluation(dataset_root=GT, gt_set="val").evaluate(RES)
J, JL = res["J"], res["J_last"]
g = {"J-Mean": np.mean(J["M"]), "J-Recall": np.mean(J["R"]), "J-Decay": np.mean(J["D"]),
     "J_tr-Mean": np.mean(JL["M"]), "J_tr-Recall": np.mean(JL["R"]), "J_tr-Decay": np.mean(JL["D"])}
names = list(J["M_per_object"])
per = {k: {"J-Mean": J["M"][i], "J-Recall": J["R"][i], "J-Decay": J["D"][i], "J_tr-Mean": JL["M"][i],
           "J_tr-Recall": JL["R"][i], "J_tr-Decay": JL["D"][i]} for i, k in enumerate(names)}
print("ORACLE-JSON" + json.dumps({"global": {k: float(v) for k, v in g.items()},
                                  "per_object": {k: {c: float(x) for c, x in v.items()} for k, v in per.items()}}))
''',
    "mose": r'''
import json, sys, os
sys.path.insert(0, SRC)
import numpy as np
from davis2017.evaluation import DAVISEvaluation
res = DAVISEvaluation(davis_root=GT, task="semi-supervised", gt_set="val").evaluate(RES)
J, F = res["J"], res["F"]
names = list(J["M_per_object"])
per = {k: {"J-Mean": J["M"][i], "J-Recall": J["R"][i], "J-Decay": J["D"][i], "F-Mean": F["M"][i],
           "F-Recall": F["R"][i], "F-Decay": F["D"][i]} for i, k in enumerate(names)}
g = {"J-Mean": np.mean(J["M"]), "J-Recall": np.mean(J["R"]), "J-Decay": np.mean(J["D"]),
     "F-Mean": np.mean(F["M"]), "F-Recall": np.mean(F["R"]), "F-Decay": np.mean(F["D"])}
g["J&F-Mean"] = (g["J-Mean"] + g["F-Mean"]) / 2
print("ORACLE-JSON" + json.dumps({"global": {k: float(v) for k, v in g.items()},
                                  "per_object": {k: {c: float(x) for c, x in v.items()} for k, v in per.items()}}))
''',
}


def make_data(bench: str, folder: Path) -> tuple[Path, Path]:
    """The generated ground truth and results (what the tests make again)."""
    from vosbench.io.layouts import generate_layout

    results = folder / "results"
    gt = generate_layout(bench, folder / "data", seed=SETTINGS["seed"], long_frames=SETTINGS["long_frames"],
                         results=results)
    return gt, results


def _mose_davis_tree(gt: Path, folder: Path) -> Path:
    """MOSE's flat folders linked into the DAVIS tree the DAVIS 2017 toolkit reads."""
    root = folder / "davis-tree"
    for sub in ("Annotations", "JPEGImages"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        os.symlink(gt / sub, root / sub / "480p")
    (root / "ImageSets" / "2017").mkdir(parents=True)
    names = sorted(p.name for p in (gt / "Annotations").iterdir())
    (root / "ImageSets" / "2017" / "val.txt").write_text("".join(f"{n}\n" for n in names))
    return root


def run_oracle(bench: str, oracle_python: str, src: Path, gt: Path, results: Path, work: Path) -> dict:
    shim = work / "cwd"
    shim.mkdir()
    if bench == "lvos":
        (shim / "unseen_videos.txt").write_text((gt / "unseen_videos.txt").read_text())
        (shim / "unsupervised_videos.txt").write_text("")
    if bench == "sav":
        gt = gt / "Annotations_6fps"
    if bench == "mose":
        gt = _mose_davis_tree(gt, work)
    out = work / "oracle-out"
    out.mkdir()
    head = f"SRC = {str(src)!r}\nGT = {str(gt)!r}\nRES = {str(results)!r}\nOUT = {str(out)!r}\n"
    script = shim / "driver.py"
    script.write_text(head + DRIVERS[bench])
    proc = subprocess.run([oracle_python, str(script)], cwd=shim, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"the {bench} oracle failed")
    line = next(l for l in proc.stdout.splitlines() if l.startswith("ORACLE-JSON"))
    data = json.loads(line[len("ORACLE-JSON"):])
    data["stdout_tail"] = proc.stdout.splitlines()[-25:]
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", choices=sorted(DRIVERS))
    parser.add_argument("--oracle-python", required=True)
    parser.add_argument("--oracle-src", required=True, type=Path)
    parser.add_argument("--oracle-commit", default="", help="the oracle repository's commit, recorded in the fixture")
    parser.add_argument("--compiled", action="store_true", help="lvos: the compiled boundary path was built")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        gt, results = make_data(args.bench, work)
        data = run_oracle(args.bench, args.oracle_python, args.oracle_src.resolve(), gt, results, work)
    name = "golden-compiled.json" if args.compiled else "golden.json"
    if args.bench == "lvos" and data.get("compiled_boundary") != args.compiled:
        raise SystemExit(f"--compiled={args.compiled} but the oracle ran compiled={data.get('compiled_boundary')}")
    versions = subprocess.run([args.oracle_python, "-c", "import sys, numpy, skimage, cv2, scipy, PIL; print("
                               "f'python {sys.version.split()[0]}, numpy {numpy.__version__}, scikit-image "
                               "{skimage.__version__}, opencv {cv2.__version__}, scipy {scipy.__version__}, "
                               "pillow {PIL.__version__}')"], capture_output=True, text=True).stdout.strip()
    fixture = {"bench": args.bench, "settings": SETTINGS, "oracle_commit": args.oracle_commit,
               "oracle_environment": versions, **data}
    target = HERE / args.bench / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(fixture, indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
