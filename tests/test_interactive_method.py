"""The reference interactive method, scribble-propagation: scribbles to a mask, then propagation."""
from __future__ import annotations

import cv2
import numpy as np

from vosbench.io.scribbles import empty_scribbles
from vosbench.methods import load_method
from vosbench.methods.base import SemiSupervisedMethod, Video
from vosbench_baselines.interactive import ScribblePropagation, ZeroMotion, scribbles_to_frame_mask


def _scene(shift: int = 0):
    """A noisy grey background with a red disk (object 1) and a blue square (object 2)."""
    rng = np.random.default_rng(0)
    image = (rng.normal(128, 6, (90, 120, 3))).clip(0, 255).astype(np.uint8)
    gt = np.zeros((90, 120), np.uint8)
    cv2.circle(gt, (35 + shift, 45), 18, 1, -1)
    cv2.rectangle(gt, (75 + shift, 25), (100 + shift, 60), 2, -1)
    image[gt == 1] = (200, 40, 40)
    image[gt == 2] = (40, 40, 200)
    return image, gt


def _line(scribbles, t, obj, p0, p1, size=(120, 90)):
    w, h = size
    scribbles["scribbles"][t].append({"path": [[p0[0] / (w - 1), p0[1] / (h - 1)], [p1[0] / (w - 1), p1[1] / (h - 1)]],
                                      "object_id": obj, "start_time": 0, "end_time": 0})


def _jaccard(a, b):
    return np.count_nonzero(a & b) / max(np.count_nonzero(a | b), 1)


def test_scribbles_become_the_objects_on_their_frame():
    image, gt = _scene()
    drawn = np.full(gt.shape, -1, np.int16)
    cv2.line(drawn, (28, 45), (42, 45), 1)
    cv2.line(drawn, (85, 35), (90, 50), 2)
    mask = scribbles_to_frame_mask(image, drawn, None)
    assert _jaccard(mask == 1, gt == 1) > 0.85 and _jaccard(mask == 2, gt == 2) > 0.85


def test_a_background_scribble_removes_a_wrong_region():
    image, gt = _scene()
    previous = gt.copy()
    previous[5:20, 5:40] = 1                      # a wrong blob of object 1 on the background
    drawn = np.full(gt.shape, -1, np.int16)
    cv2.line(drawn, (8, 12), (36, 12), 0)
    mask = scribbles_to_frame_mask(image, drawn, previous)
    assert np.count_nonzero(mask[5:20, 5:40] == 1) < 0.1 * 15 * 35
    assert _jaccard(mask == 1, gt == 1) > 0.85 and np.array_equal(mask == 2, gt == 2)


def test_interactions_propagate_and_keep_corrected_frames():
    frames, gts = zip(*[_scene(shift=t) for t in range(5)])
    video = Video(name="v", frames=list(frames), frame_names=[f"{t:05d}" for t in range(5)], object_ids=[1, 2])
    method = ScribblePropagation(propagator="zero-motion")
    first = empty_scribbles("v", 5)
    _line(first, 2, 1, (30, 45), (44, 45))
    _line(first, 2, 2, (85, 35), (90, 50))
    masks = method.interact(video, first, None)
    assert masks.shape == (5, 90, 120) and masks.dtype == np.uint8
    assert all(_jaccard(masks[t] == 1, gts[2] == 1) > 0.85 for t in range(5))   # zero motion: copies of frame 2
    second = empty_scribbles("v", 5)
    _line(second, 4, 1, (34, 45), (48, 45))
    _line(second, 4, 2, (89, 35), (94, 50))
    again = method.interact(video, second, masks)
    assert np.array_equal(again[:3], masks[:3])          # frames up to the corrected frame 2 are kept
    assert _jaccard(again[4] == 1, gts[4] == 1) > 0.85


def test_the_propagator_is_an_option():
    class Recorder(SemiSupervisedMethod):
        name = "recorder"
        calls = 0

        def segment(self, video):
            Recorder.calls += 1
            for _ in video.frames:
                yield video.given_masks[0]

    frames, _ = zip(*[_scene() for _ in range(3)])
    video = Video(name="v", frames=list(frames), frame_names=["a", "b", "c"], object_ids=[1])
    scribbles = empty_scribbles("v", 3)
    _line(scribbles, 1, 1, (30, 45), (44, 45))
    ScribblePropagation(propagator=Recorder()).interact(video, scribbles, None)
    assert Recorder.calls == 2    # forward and backward from the scribbled frame
    assert isinstance(ScribblePropagation(propagator="zero-motion").propagator, ZeroMotion)


def test_registered_by_name():
    method = load_method("scribble-propagation", propagator="zero-motion")
    assert isinstance(method, ScribblePropagation) and method.track == "interactive"


def test_an_stm_propagator_named_by_the_user_runs_without_online_finetuning():
    # Fine-tuning would run on every propagation, twice per interaction, inside the timed protocol.
    propagator = ScribblePropagation(device="cpu", propagator="stm").propagator
    assert propagator.name == "stm" and propagator.finetune_steps == 0
