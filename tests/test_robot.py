"""The scribble robot on its own: the steps against slow references, determinism, where scribbles land."""
from __future__ import annotations

import math

import cv2
import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.filters import rank
from skimage.morphology import disk

from vosbench.io.scribbles import annotated_frames, dumps_scribbles
from vosbench.tracks.interactive.robot import (RobotParams, ScribbleRobot, acyclic_pieces, bezier_curve,
                                               longest_path, open_error_region, skeleton, skeleton_graph,
                                               worst_frame)


def _blobs(seed: int, height: int = 90, width: int = 120, n_objects: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), np.uint8)
    for obj in range(1, n_objects + 1):
        for _ in range(2):
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            axes = (int(rng.integers(5, width // 3)), int(rng.integers(5, height // 3)))
            cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, obj, -1)
    return mask


def _opening_reference(mask: np.ndarray, params: RobotParams) -> np.ndarray:
    """The framework's opening, with skimage's rank filters (slow)."""
    mask = mask.astype(np.uint8)
    radius = min(params.kernel_size * math.sqrt(mask.sum()) * 0.5, params.max_kernel_radius)
    out = mask
    while radius > 1.0:
        kernel = disk(radius)
        out = rank.maximum(rank.minimum(mask.copy(), kernel), kernel)
        if out.astype(bool).any():
            break
        radius *= 0.9
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), kernel_size=st.sampled_from([0.05, 0.2, 0.5, 0.9]),
       corner=st.booleans())
def test_opening_equals_the_rank_filter_opening(seed, kernel_size, corner):
    rng = np.random.default_rng(seed)
    mask = rng.random((40, 50)) < rng.uniform(0.2, 0.9)
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).astype(bool)
    if corner:   # regions touching the image border, where off-centre disks matter
        mask[:6, :6] = True
    params = RobotParams(kernel_size=kernel_size)
    assert np.array_equal(open_error_region(mask, params) > 0, _opening_reference(mask, params) > 0)


def test_bezier_curve_runs_from_last_to_first_point_and_keeps_long_paths():
    pts = np.array([[0, 0], [10, 0], [10, 10], [20, 10]], float)
    curve = bezier_curve(pts, 50)
    assert curve.shape == (50, 2)
    np.testing.assert_allclose(curve[0], pts[-1])
    np.testing.assert_allclose(curve[-1], pts[0])
    # Bernstein weights sum to one: every sample is a convex combination of the points.
    assert (curve.min(axis=0) >= pts.min(axis=0) - 1e-9).all() and (curve.max(axis=0) <= pts.max(axis=0) + 1e-9).all()
    long_path = np.column_stack([np.arange(1200), np.zeros(1200)])
    assert np.array_equal(bezier_curve(long_path, 1000), long_path)
    assert bezier_curve(pts, 5000).shape == (1000, 2)


def test_graph_pieces_are_trees_with_longest_paths():
    skel = np.zeros((30, 30), bool)
    cv2.circle(skel.view(np.uint8), (15, 15), 8, 1, 1)    # a ring: one cycle to break
    skel[2, 2:6] = True                                   # a 4-pixel segment: kept
    skel[28, 28] = skel[28, 27] = True                    # a 2-pixel piece: dropped
    graph, points = skeleton_graph(skel)
    assert len(points) == int(skel.sum())
    pieces = acyclic_pieces(graph, min_nb_nodes=4)
    assert len(pieces) == 2 and all(nx.is_tree(p) for p in pieces)
    for piece in pieces:
        path = longest_path(piece)
        eccentricity = max(nx.single_source_shortest_path_length(piece, path[0]).values())
        assert len(path) - 1 == eccentricity == nx.diameter(piece)


def test_scribbles_lie_on_the_error_regions_and_name_their_object():
    gt = _blobs(1)
    pred = np.roll(gt, (9, -7), axis=(0, 1))
    out = ScribbleRobot(seed=0).interact("s", pred[None], gt[None], nb_objects=2, frame=0)
    scribbles = out["scribbles"][0]
    assert scribbles and annotated_frames(out) == [0]
    h, w = gt.shape
    for s in scribbles:
        path = np.asarray(s["path"]) * [w, h]
        error = (gt == s["object_id"]) & (pred != s["object_id"])
        # The skeleton is that of the opened region, which the framework's off-centre disks
        # (non-integer radii, the same footprint for erosion and dilation) may shift off the
        # error region by a pixel.
        error = open_error_region(error) > 0
        ends = np.rint(path[[0, -1]]).astype(int)   # the curve's ends are skeleton pixels
        assert error[ends[:, 1], ends[:, 0]].all()
        inside = error[np.clip(path[:, 1].astype(int), 0, h - 1), np.clip(path[:, 0].astype(int), 0, w - 1)]
        assert inside.mean() > 0.8
    assert {s["object_id"] for s in scribbles} <= {0, 1, 2}


def test_no_error_no_scribble_and_empty_prediction_scribbles_objects_only():
    gt = _blobs(2)
    robot = ScribbleRobot()
    assert robot.interact("s", gt[None], gt[None], 2, frame=0)["scribbles"] == [[]]
    out = robot.interact("s", np.zeros_like(gt)[None], gt[None], 2, frame=0)
    assert {s["object_id"] for s in out["scribbles"][0]} == {1, 2}


def test_same_seed_same_bytes():
    gt = np.stack([_blobs(s) for s in (3, 4, 5)])
    pred = np.stack([np.roll(g, 6, axis=1) for g in gt])
    a = ScribbleRobot(seed=4).interact("s", pred, gt, 2)
    b = ScribbleRobot(seed=4).interact("s", pred, gt, 2)
    assert dumps_scribbles(a) == dumps_scribbles(b)
    assert all(s["start_time"] == s["end_time"] == 0 for f in a["scribbles"] for s in f)


def test_worst_frame_is_lowest_mean_jaccard():
    gt = np.stack([_blobs(s) for s in (6, 7, 8)])
    pred = gt.copy()
    pred[1] = np.roll(gt[1], 3, axis=0)
    pred[2] = np.roll(gt[2], 15, axis=0)
    assert worst_frame(gt, pred, 2) == 2
    assert ScribbleRobot().interact("s", pred, gt, 2)["scribbles"][2]


def test_skeleton_is_inside_the_region():
    gt = _blobs(9)
    region = gt == 1
    skel = skeleton(region, RobotParams(), seed=0)
    assert skel.any() and not (skel & ~region).any()


def test_bad_parameters_and_shapes():
    with pytest.raises(ValueError):
        RobotParams(kernel_size=1.0)
    with pytest.raises(ValueError):
        ScribbleRobot().interact("s", np.zeros((2, 4, 4)), np.zeros((1, 4, 4)))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), tie_break=st.sampled_from([None, 0, 7]))
def test_medial_axis_equals_scikit_images(seed, tie_break):
    """The robot's medial axis (lookup tables built once) is scikit-image's, for both tie-breaks."""
    from skimage.morphology import medial_axis

    from vosbench.tracks.interactive.robot import _LegacyTieBreak, _medial_axis

    rng = np.random.default_rng(seed)
    region = np.zeros((50, 70), bool)
    for _ in range(int(rng.integers(1, 4))):
        centre = (int(rng.integers(5, 65)), int(rng.integers(5, 45)))
        axes = (int(rng.integers(2, 25)), int(rng.integers(2, 20)))
        cv2.ellipse(region.view(np.uint8), centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    region = np.pad(region, 1)
    rng_arg = _LegacyTieBreak() if tie_break is None else tie_break
    assert np.array_equal(_medial_axis(region, tie_break), medial_axis(region, rng=rng_arg))


def test_the_official_tie_break_is_scikit_image_018s_permutation():
    from vosbench.tracks.interactive.robot import _tie_break

    assert np.array_equal(_tie_break(10, None), np.random.RandomState(0).permutation(10))
    assert np.array_equal(_tie_break(10, 3), np.random.default_rng(3).permutation(10))


def test_neighbour_order_is_scikit_learn_020s():
    """The KD-tree index array scikit-learn 0.20.3 builds (leaf size 30) on 82 scattered pixels, recorded
    there with ``KDTree(points, leaf_size=30).get_arrays()[1]`` (numpy 1.21.6): quickselect ties included."""
    from vosbench.tracks.interactive.robot import _kdtree_index_order

    ys, xs = np.nonzero(np.random.RandomState(3).rand(12, 15) < 0.45)
    expected = [0, 1, 7, 8, 9, 10, 16, 17, 23, 24, 25, 26, 29, 30, 31, 32, 33, 36, 37, 38, 39, 40, 41, 47, 54, 55,
                61, 62, 63, 64, 68, 69, 70, 75, 76, 77, 78, 48, 2, 34, 56, 71, 44, 11, 42, 79, 19, 45, 12, 65, 4, 49,
                50, 3, 72, 73, 18, 27, 57, 58, 35, 80, 28, 20, 66, 21, 51, 52, 22, 15, 5, 43, 6, 59, 13, 46, 14, 81,
                74, 53, 60, 67]
    assert _kdtree_index_order(np.column_stack([xs, ys])) == expected


def test_robot_parameters_are_settable_like_the_frameworks():
    robot = ScribbleRobot()
    robot.min_nb_nodes = 9
    robot.kernel_size = 0.1
    assert robot.params == RobotParams(kernel_size=0.1, min_nb_nodes=9)
    with pytest.raises(ValueError):
        robot.kernel_size = 1.5
    with pytest.raises(ValueError):
        ScribbleRobot(seed=1.5)
