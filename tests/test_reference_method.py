"""The training-free reference methods: flow-warp follows motion, first-frame is the floor below it."""
from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from vosbench.errors import VosbenchError
from vosbench.io.datasets import DavisDataset
from vosbench.io.synthetic import SyntheticParams, generate_dataset
from vosbench.methods import available_methods, load_method
from vosbench.methods.base import Video
from vosbench.methods.runner import segment_dataset
from vosbench.metrics import jaccard
from vosbench.tracks import EvalParams, evaluate_dataset
from vosbench_baselines.reference import FirstFrame, FlowAlgorithm, FlowWarp


def _moving_disk(n_frames: int = 8, step=(3, 2), size=(96, 128), radius: int = 18):
    """A textured disk (the cat) gliding over a still textured background (grass)."""
    height, width = size
    background = np.repeat(data.grass()[:height, :width, None], 3, axis=2)
    cat = data.chelsea()
    yy, xx = np.mgrid[0:height, 0:width]
    frames, masks = [], []
    for t in range(n_frames):
        cy, cx = 40 + step[1] * t, 35 + step[0] * t
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
        frame = background.copy()
        # The texture moves with the disk, as an object's own texture does.
        frame[disk] = cat[100 + yy[disk] - cy, 200 + xx[disk] - cx]
        frames.append(frame)
        masks.append(disk.astype(np.uint8))
    return frames, masks


def _video(frames, masks, given=None):
    return Video("disk", frames, [f"{t:05d}" for t in range(len(frames))],
                 given_masks=given if given is not None else {0: masks[0]}, object_ids=[1])


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize("flow", list(FlowAlgorithm))
def test_flow_warp_follows_a_moving_object_where_first_frame_cannot(flow):
    frames, masks = _moving_disk()
    warped = list(FlowWarp(flow=flow).segment(_video(frames, masks)))
    still = list(FirstFrame().segment(_video(frames, masks)))
    assert len(warped) == len(frames) and all(m.dtype == np.uint8 and m.shape == masks[0].shape for m in warped)
    np.testing.assert_array_equal(warped[0], masks[0])
    j_warp = jaccard(masks[-1].astype(bool), warped[-1] == 1)
    j_still = jaccard(masks[-1].astype(bool), still[-1] == 1)
    assert j_warp > j_still + 0.2, (j_warp, j_still)
    # The mask moved along with the object (most of the way), not just grew.
    moved = _centroid(warped[-1] == 1) - _centroid(masks[0])
    truth = _centroid(masks[-1]) - _centroid(masks[0])
    assert np.dot(moved, truth) / np.dot(truth, truth) > 0.3


def test_occlusion_check_stops_the_mask_trailing_behind():
    frames, masks = _moving_disk()
    plain = list(FlowWarp().segment(_video(frames, masks)))
    checked = list(FlowWarp(occlusion_check=True).segment(_video(frames, masks)))
    j_plain = jaccard(masks[-1].astype(bool), plain[-1] == 1)
    j_checked = jaccard(masks[-1].astype(bool), checked[-1] == 1)
    assert j_checked > 0.8 and j_checked > j_plain, (j_checked, j_plain)
    # Without the check, uncovered background trails behind: the mask grows.
    assert (plain[-1] == 1).sum() > (checked[-1] == 1).sum()


def test_flow_warp_is_deterministic():
    frames, masks = _moving_disk(n_frames=5)
    first = list(FlowWarp().segment(_video(frames, masks)))
    second = list(FlowWarp().segment(_video(frames, masks)))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", [FlowWarp, FirstFrame])
def test_objects_given_later_are_tracked_from_their_first_frame(cls):
    frames, masks = _moving_disk(n_frames=6)
    late = np.zeros_like(masks[0])
    late[70:90, 100:120] = 2
    given = {0: masks[0], 3: late}
    outputs = list(cls().segment(Video("disk", frames, [f"{t:05d}" for t in range(6)], given_masks=given,
                                       object_ids=[1, 2])))
    assert not any((m == 2).any() for m in outputs[:3])
    assert (outputs[3][late == 2] == 2).all()
    assert (outputs[5] == 2).sum() > 0.5 * (late == 2).sum()


def test_reference_methods_are_registered_and_cpu_only():
    assert {"flow-warp", "first-frame"} <= set(available_methods())
    method = load_method("flow-warp", device="auto")
    assert isinstance(method, FlowWarp) and method.device == "cpu"
    assert method.options == {"flow": "dis", "softness": 1.0, "occlusion_check": False}
    with pytest.raises(VosbenchError, match="needs no weights"):
        load_method("flow-warp", device="cpu", weights="model.pt")
    with pytest.raises(ValueError):
        FlowWarp(flow="magic")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Generated data like the embedded dataset's, fewer and smaller frames to keep the test quick."""
    params = SyntheticParams(n_sequences=4, n_frames=12, height=180, width=240)
    return generate_dataset(tmp_path_factory.mktemp("reference") / "synthetic", seed=0, params=params)


def test_flow_warp_beats_first_frame_on_the_generated_data(generated, tmp_path):
    dataset = DavisDataset(generated, year=2017, split="val")
    scores = {}
    for method in (FlowWarp(), FirstFrame()):
        out = tmp_path / method.name
        segment_dataset(method, dataset, out, track="semi", progress=False)
        result = evaluate_dataset(dataset, out, EvalParams.official("semi"), progress=False, cache_dir=False)
        scores[method.name] = result.summary["J&F-Mean"]
    assert scores["flow-warp"] > scores["first-frame"] + 0.05, scores
