"""vosbench's robot draws the official scribbles: the DAVIS interactive framework's robot on the challenges' stack.

The fixture ``fixtures/interactive/robot_official.npz`` holds what davisinteractive 1.0.4's
robot drew, with its evaluation service's parameters, on Python 3.7 with numpy 1.21.6,
scikit-image 0.18.3, scikit-learn 0.20.3 and networkx 2.4 (the stack of the DAVIS
interactive challenges); ``fixtures/interactive/make_robot_fixture.py`` made it and says
how. Cases: real DAVIS 2016 val frames with the masks of the 7 published methods in
../shared as predictions (each method's worst, median and best frame of each sequence),
empty predictions, and multi-object synthetic frames (stored in the fixture).

Per scribble the fixture keeps the Bezier curve's control points (the longest skeleton
path, integer pixels) and 5 points of the curve in full precision: vosbench's control
points must be the same, in the same order, and its curve equal at those points to 1e-9
(its Bezier curve is checked against the official curve's points through the recorded
control points too).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from vosbench.io import read_mask
from vosbench.tracks.interactive.robot import ScribbleRobot, bezier_curve

log = logging.getLogger(__name__)
FIXTURE = Path(__file__).parent / "fixtures" / "interactive" / "robot_official.npz"
TOLERANCE = 1e-9


class OfficialScribbles:
    """The fixture: the cases and, per case, the official scribbles."""

    def __init__(self, path: Path = FIXTURE):
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays["meta"]))
        self.cases: list[dict] = meta["cases"]
        self.stack: dict = meta["stack"]
        self.n_samples: int = meta["n_samples"]
        self.official_seconds = arrays["official_seconds"]
        offsets = arrays["ctrl_offsets"]
        self.scribbles: list[list[tuple[int, np.ndarray, int, np.ndarray]]] = [[] for _ in self.cases]
        for k, case in enumerate(arrays["scribble_case"]):
            # control points: the first one, then the steps between consecutive ones
            steps = arrays["ctrl_steps"][offsets[k] - k:offsets[k + 1] - k - 1].astype(np.int64)
            ctrl = arrays["ctrl_start"][k].astype(np.int64) + np.concatenate([[[0, 0]], np.cumsum(steps, axis=0)])
            self.scribbles[int(case)].append((int(arrays["scribble_object"][k]), ctrl, int(arrays["curve_len"][k]),
                                              arrays["curve_samples"][k]))
        shapes = arrays["synth_shapes"]
        ends = np.cumsum([0] + [int(h) * int(w) for h, w in shapes])
        self.synthetic = [(arrays["synth_gt"][a:b].reshape(shape), arrays["synth_pred"][a:b].reshape(shape))
                          for a, b, shape in zip(ends[:-1], ends[1:], shapes)]

    def inputs(self, k: int, davis2016_root: Path | None):
        """(gt, pred, nb_objects) of case k."""
        case = self.cases[k]
        if case["kind"] == "synthetic":
            gt, pred = self.synthetic[case["index"]]
            return gt, pred, case["nb_objects"]
        name = f"{case['frame']}.png"
        gt = read_mask(davis2016_root / "Annotations" / "480p" / case["sequence"] / name, binary=True)
        if case["method"] is None:
            return gt, np.zeros_like(gt), 1
        pred = read_mask(davis2016_root / "results" / case["method"] / case["sequence"] / name, binary=True)
        return gt, pred, 1


def difference(robot: ScribbleRobot, gt: np.ndarray, pred: np.ndarray, nb_objects: int,
               expected: list[tuple[int, np.ndarray, int, np.ndarray]], n_samples: int) -> str | None:
    """None when the robot draws the expected scribbles, else what differs."""
    got = robot.interact("case", pred[None], gt[None], nb_objects=nb_objects, frame=0)["scribbles"][0]
    if len(got) != len(expected):
        return f"{len(got)} scribbles, expected {len(expected)}"
    height, width = gt.shape
    for k, (scribble, (obj, ctrl, n_points, samples)) in enumerate(zip(got, expected)):
        if scribble["object_id"] != obj:
            return f"scribble {k}: object {scribble['object_id']}, expected {obj}"
        path = np.asarray(scribble["path"], dtype=np.float64)
        if len(path) != n_points:
            return f"scribble {k}: {len(path)} points, expected {n_points}"
        idx = np.rint(np.linspace(0, n_points - 1, n_samples)).astype(int)
        if not np.allclose(path[idx], samples, rtol=0, atol=TOLERANCE):
            return f"scribble {k}: curve differs by {np.abs(path[idx] - samples).max():.3g}"
    paths = [p for obj in range(nb_objects + 1)
             for p in robot.skeleton_paths((gt == obj) & (pred != obj))]
    for k, (path, (_, ctrl, _, _)) in enumerate(zip(paths, expected)):
        if path.shape != ctrl.shape or not np.array_equal(path, ctrl):
            return f"scribble {k}: other control points"
    return None


@pytest.fixture(scope="module")
def official() -> OfficialScribbles:
    return OfficialScribbles()


def _agreement(official: OfficialScribbles, kinds: set[str], davis2016_root: Path | None):
    robot = ScribbleRobot()
    differing, n, n_scribbles = {}, 0, 0
    for k, case in enumerate(official.cases):
        if case["kind"] not in kinds:
            continue
        gt, pred, nb_objects = official.inputs(k, davis2016_root)
        n += 1
        n_scribbles += len(official.scribbles[k])
        problem = difference(robot, gt, pred, nb_objects, official.scribbles[k], official.n_samples)
        if problem:
            differing[json.dumps(case, sort_keys=True)] = problem
    return n, n_scribbles, differing


def test_fixture_is_the_challenges_stack(official):
    assert official.stack["scikit-image"] == "0.18.3" and official.stack["scikit-learn"] == "0.20.3"
    assert official.stack["networkx"] == "2.4" and official.stack["python"].startswith("3.7")
    assert len(official.cases) >= 500
    kinds = {(c["kind"], c.get("label")) for c in official.cases}
    assert {("davis2016", "worst"), ("davis2016", "median"), ("davis2016", "best"), ("davis2016", "empty"),
            ("synthetic", None)} <= kinds


def test_robot_draws_the_official_scribbles_on_multi_object_frames(official):
    n, n_scribbles, differing = _agreement(official, {"synthetic"}, None)
    log.info("synthetic: %d/%d cases identical (%d scribbles)", n - len(differing), n, n_scribbles)
    assert n >= 100 and n_scribbles > n
    assert not differing, f"{len(differing)} of {n} cases differ: {differing}"


@pytest.mark.shared
@pytest.mark.slow
def test_robot_draws_the_official_scribbles_on_davis2016_val(official, davis2016_root):
    n, n_scribbles, differing = _agreement(official, {"davis2016"}, davis2016_root)
    log.info("DAVIS 2016 val: %d/%d cases identical (%d scribbles)", n - len(differing), n, n_scribbles)
    assert n >= 400 and n_scribbles > n
    assert not differing, f"{len(differing)} of {n} cases differ: {differing}"


def test_another_seed_is_another_robot(official):
    # The tie-break matters: a seeded default_rng permutation draws other scribbles on some frames.
    seeded = ScribbleRobot(seed=0)
    changed = 0
    for k, case in enumerate(official.cases):
        if case["kind"] == "synthetic":
            gt, pred, nb_objects = official.inputs(k, None)
            changed += difference(seeded, gt, pred, nb_objects, official.scribbles[k], official.n_samples) is not None
    assert changed > 0


def test_bezier_of_the_control_points_is_the_official_curve(official):
    # Independent of the robot: the curve through the recorded control points at the recorded samples.
    checked = 0
    for k, case in enumerate(official.cases):
        if case["kind"] != "synthetic":
            continue
        height, width = official.synthetic[case["index"]][0].shape
        for _, ctrl, n_points, samples in official.scribbles[k]:
            curve = bezier_curve(ctrl, 1000) / [width, height]
            idx = np.rint(np.linspace(0, n_points - 1, official.n_samples)).astype(int)
            np.testing.assert_allclose(curve[idx], samples, rtol=0, atol=TOLERANCE)
            checked += 1
    assert checked > 100
