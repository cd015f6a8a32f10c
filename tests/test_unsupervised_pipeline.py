"""The unsupervised pipeline: motion saliency without camera motion, proposals, Hungarian association, key frames."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from vosbench.methods.base import Video
from vosbench.methods.registry import get_method
from vosbench_baselines.unsupervised import (FlowWarpPropagator, Proposal, UnsupervisedPipeline, associate,
                                             camera_motion, frame_proposals, mask_iou, motion_saliency,
                                             optical_flow, refine_mask)


def _texture(h: int, w: int, seed: int, grain: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.random((h // grain + 1, w // grain + 1, 3)).astype(np.float32)
    return (cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)


def _scene(t: int, h: int = 96, w: int = 128, pan=(2, 1), objects=((20, 30, 3, 0), (60, 70, -2, 1)), radius: int = 12,
           present=None) -> tuple[np.ndarray, np.ndarray]:
    """A panning textured background with textured discs moving on their own; ids 1..n."""
    big = _texture(h + 60, w + 60, 1)
    oy, ox = 30 - pan[1] * t, 30 - pan[0] * t
    frame = big[oy:oy + h, ox:ox + w].copy()
    ids = np.zeros((h, w), np.uint8)
    for k, (y, x, vx, vy) in enumerate(objects, start=1):
        if present is not None and not present(k, t):
            continue
        disc = np.zeros((h, w), np.uint8)
        cv2.circle(disc, (x + vx * t, y + vy * t), radius, 1, -1)
        tex = np.roll(_texture(h, w, 10 + k, grain=2), (vy * t, vx * t), axis=(0, 1))   # the texture moves with the disc
        frame[disc > 0] = tex[disc > 0]
        ids[disc > 0] = k
    return frame, ids


def test_camera_motion_explains_a_pan_and_leaves_the_object():
    a, ids_a = _scene(0, objects=((40, 50, 4, 0),))
    b, _ = _scene(1, objects=((40, 50, 4, 0),))
    flow = optical_flow(a, b)
    camera = camera_motion(flow)
    # Away from the object and the borders the camera model is the pan: the view moves up-left
    # by (2, 1) px per frame, so the background moves by (+2, +1).
    background = np.zeros(ids_a.shape, bool)
    background[10:-10, 10:-10] = True
    background &= cv2.dilate(ids_a, np.ones((15, 15), np.uint8)) == 0
    assert np.allclose(np.median(camera[background], axis=0), (2, 1), atol=0.5)
    saliency = motion_saliency(flow)
    core = cv2.erode(ids_a, np.ones((9, 9), np.uint8)) > 0
    assert saliency[core].mean() > 0.5 > saliency[background].mean() + 0.2


def test_refine_fills_holes_and_drops_fragments():
    mask = np.zeros((100, 100), bool)
    mask[20:60, 20:60] = True
    mask[35:45, 35:45] = False      # a hole
    mask[90, 90] = True             # a fragment of one pixel
    refined = refine_mask(mask, min_fraction=0.002)
    assert refined[40, 40] and not refined[90, 90]
    assert refined[20:60, 20:60].all()


def test_proposals_rank_moving_objects_first():
    objectness = np.zeros((60, 80), np.float32)
    objectness[5:25, 5:25] = 0.9     # static object
    objectness[30:55, 40:70] = 0.9   # moving object
    motion = np.zeros_like(objectness)
    motion[30:55, 40:70] = 0.9
    proposals = frame_proposals(objectness, motion)
    assert len(proposals) == 2
    assert proposals[0].mask[40, 50] and proposals[1].mask[10, 10]
    assert proposals[0].score > proposals[1].score


def test_hungarian_association_is_one_to_one_and_merges_fragments():
    h, w = 40, 40
    a = np.zeros((h, w), bool)
    a[0:20, 0:20] = True
    b = np.zeros((h, w), bool)
    b[20:40, 20:40] = True
    # Proposal 0 overlaps both tracks, but overlaps b best; proposal 1 overlaps a best.
    p0 = np.zeros((h, w), bool)
    p0[18:40, 18:40] = True
    p1 = np.zeros((h, w), bool)
    p1[0:18, 0:22] = True
    fragment = np.zeros((h, w), bool)
    fragment[25:28, 25:28] = True    # inside b's propagated mask
    stranger = np.zeros((h, w), bool)
    stranger[0:5, 30:40] = True
    masks, unmatched = associate({1: a, 2: b}, [Proposal(p0, 0.9), Proposal(p1, 0.8), Proposal(fragment, 0.5),
                                                 Proposal(stranger, 0.7)])
    assert mask_iou(masks[2], p0) == 1.0 and mask_iou(masks[1], p1) == 1.0
    assert [u.score for u in unmatched] == [0.7]


def test_a_missed_object_keeps_its_propagated_mask():
    a = np.zeros((30, 30), bool)
    a[5:15, 5:15] = True
    masks, unmatched = associate({1: a}, [])
    assert np.array_equal(masks[1], a) and unmatched == []


def test_flow_warp_propagator_follows_a_moving_object():
    frames, gts = zip(*[_scene(t, h=160, w=200, pan=(0, 0), objects=((80, 66, 3, 0),), radius=25) for t in range(6)])
    video = Video("disc", list(frames), [f"{t:05d}" for t in range(6)], {0: gts[0]}, [1])
    out = list(FlowWarpPropagator().segment(video))
    assert mask_iou(out[-1] == 1, gts[-1] == 1) > 0.7


class _OracleObjectness(UnsupervisedPipeline):
    """The pipeline with a stand-in objectness (the scene's masks, blurred and noisy) and no network."""

    def __init__(self, scene, **options):
        super().__init__(device="cpu", propagator="flow-warp", **options)
        self.scene = scene
        self._t = 0

    def detect(self, frames, progress=None):
        self._t = 0
        return super().detect(frames, progress)

    confidence = {}   # object id -> peak objectness (default 0.9)

    def objectness(self, frame):
        _, ids = self.scene(self._t)
        self._t += 1
        rng = np.random.default_rng(self._t)
        peak = np.ones(256, np.float32) * 0.9
        for k, c in self.confidence.items():
            peak[k] = c
        soft = cv2.GaussianBlur(peak[ids] * (ids > 0), (5, 5), 0)
        return np.clip(soft + rng.normal(0, 0.05, soft.shape), 0, 1).astype(np.float32)


def _best_object_iou(outputs, gts, object_id):
    """Mean over frames of the IoU of the output id that best covers `object_id` (the unsupervised matching)."""
    candidates = {int(i) for o in outputs for i in np.unique(o) if i}
    scores = []
    for c in candidates:
        scores.append(np.mean([mask_iou(o == c, g == object_id) for o, g in zip(outputs, gts)]))
    return max(scores, default=0.0)


def test_pipeline_tracks_each_object_under_one_id():
    n = 8
    scene = _scene
    frames, gts = zip(*[scene(t) for t in range(n)])
    video = Video("two", list(frames), [f"{t:05d}" for t in range(n)])
    method = _OracleObjectness(scene)
    outputs = list(method.segment(video))
    assert len(outputs) == n and all(o.shape == gts[0].shape and o.dtype == np.uint8 for o in outputs)
    for object_id in (1, 2):
        assert _best_object_iou(outputs, gts, object_id) > 0.8
    assert max(int(o.max()) for o in outputs) <= 20


def test_key_frames_recover_an_object_missing_from_the_first_key_frame():
    n = 8

    def scene(t):   # the second object shows only from frame 5 on: it is not on the seed key frame
        return _scene(t, present=lambda k, t: k == 1 or t >= 5)

    frames, gts = zip(*[scene(t) for t in range(n)])
    video = Video("late", list(frames), [f"{t:05d}" for t in range(n)])
    one_key = _OracleObjectness(scene, max_key_frames=1)
    two_keys = _OracleObjectness(scene, max_key_frames=3)
    # The late object is detected less confidently, so the seed key frame is one without it.
    one_key.confidence = two_keys.confidence = {2: 0.7}
    late_frames = slice(5, n)
    with_one = list(one_key.segment(video))
    with_more = list(two_keys.segment(video))
    assert _best_object_iou(with_more[late_frames], gts[late_frames], 2) > 0.8
    assert _best_object_iou(with_more[late_frames], gts[late_frames], 2) > \
        _best_object_iou(with_one[late_frames], gts[late_frames], 2)


def test_at_most_max_objects_ids():
    n = 3
    objects = tuple((10 + 25 * (k // 5), 12 + 25 * (k % 5), 0, 0) for k in range(8))

    def scene(t):
        return _scene(t, h=120, w=140, objects=objects)

    frames, _ = zip(*[scene(t) for t in range(n)])
    video = Video("many", list(frames), [f"{t:05d}" for t in range(n)])
    method = _OracleObjectness(scene, max_objects=5)
    outputs = list(method.segment(video))
    assert 1 <= len({int(i) for o in outputs for i in np.unique(o) if i}) <= 5


def test_registered_and_propagates_with_stm_when_registered():
    from vosbench.methods.registry import available_methods

    cls = get_method("unsupervised")
    assert cls is UnsupervisedPipeline and cls.track == "unsupervised"
    expected = "stm" if "stm" in available_methods() else "flow-warp"
    assert cls(device="cpu").propagator_choice() == expected
    assert cls(device="cpu", propagator="flow-warp").propagator_choice() == "flow-warp"
    assert isinstance(cls(device="cpu", propagator="flow-warp").propagator(), FlowWarpPropagator)
    # STM propagates the pipeline's own proposals: never fine-tuned on them, whatever STM's default.
    stm = cls(device="cpu", propagator="stm")
    assert stm.propagator().options["finetune_steps"] == 0
    assert stm.options["propagator_options"]["finetune_steps"] == 0


def test_run_identity_names_the_weights_of_both_parts(tmp_path):
    """Other objectness or propagator weights give other masks: a resumed run must see the difference."""
    import hashlib

    import torch

    from vosbench.methods.registry import available_methods
    from vosbench.methods.runner import method_identity
    from vosbench_baselines.single_frame import SegNet, default_weights, save_trained

    packaged = UnsupervisedPipeline(device="cpu", propagator="flow-warp")
    osvos_sha = hashlib.sha256(default_weights("osvos").read_bytes()).hexdigest()[:16]
    assert packaged.options["objectness_weights_sha256"] == osvos_sha
    assert packaged.options["propagator_options"]["name"] == "flow-warp"
    torch.manual_seed(3)
    other = save_trained(SegNet(pretrained=False), tmp_path / "other.pt", {"method": "osvos"})
    retrained = UnsupervisedPipeline(device="cpu", propagator="flow-warp", objectness_weights=str(other))
    assert retrained.options["objectness_weights_sha256"] != osvos_sha
    assert method_identity(retrained) != method_identity(packaged)
    if "stm" in available_methods():
        stm_options = UnsupervisedPipeline(device="cpu").options["propagator_options"]
        assert stm_options["name"] == "stm" and len(stm_options["weights_sha256"]) == 16


@pytest.mark.slow
def test_pipeline_on_the_embedded_dataset(tmp_path):
    """End to end with the packaged objectness network on a tiny generated sequence."""
    from vosbench.io.datasets import DavisDataset
    from vosbench.io.synthetic import generate_dataset

    root = generate_dataset(tmp_path / "synthetic", seed=0, n_sequences=1, n_frames=5, height=64, width=96,
                            max_objects=2)
    dataset = DavisDataset(root, year=2017, split="val")
    name = dataset.sequence_names()[0]
    frames = [dataset.read_frame(name, f) for f in dataset.frame_names(name)]
    video = Video(name, frames, dataset.frame_names(name))
    outputs = list(UnsupervisedPipeline(device="cpu").segment(video))
    assert len(outputs) == 5 and all(o.shape == frames[0].shape[:2] for o in outputs)
    assert max(int(o.max()) for o in outputs) <= 20


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda():
    frames, _ = zip(*[_scene(t) for t in range(3)])
    video = Video("cuda", list(frames), [f"{t:05d}" for t in range(3)])
    outputs = list(UnsupervisedPipeline(device="cuda", propagator="flow-warp").segment(video))
    assert len(outputs) == 3
