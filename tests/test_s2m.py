"""s2m-stm: scribble-to-mask network, STM propagation from every interacted frame, fusion."""
from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
import torch

from vosbench.errors import InputError, VosbenchError
from vosbench.io.scribbles import empty_scribbles
from vosbench.methods import load_method
from vosbench.methods.base import Video
from vosbench_baselines.fusion import FusionNet, fuse, load_fusion
from vosbench_baselines.s2m import (DEFAULT_FUSION_WEIGHTS, DEFAULT_WEIGHTS, ERROR_KINDS, S2MNet, S2MSampler, S2MSTM,
                                    load_s2m, simulate_error)
from vosbench_baselines.training import export_weights


def _scene(shift: int = 0):
    """A noisy grey background with a red disk (object 1) and a blue square (object 2)."""
    rng = np.random.default_rng(0)
    image = (rng.normal(128, 6, (96, 128, 3))).clip(0, 255).astype(np.uint8)
    gt = np.zeros((96, 128), np.uint8)
    cv2.circle(gt, (35 + shift, 48), 18, 1, -1)
    cv2.rectangle(gt, (75 + shift, 25), (100 + shift, 60), 2, -1)
    image[gt == 1] = (200, 40, 40)
    image[gt == 2] = (40, 40, 200)
    return image, gt


def _line(scribbles, t, obj, p0, p1, size=(128, 96)):
    w, h = size
    scribbles["scribbles"][t].append({"path": [[p0[0] / (w - 1), p0[1] / (h - 1)], [p1[0] / (w - 1), p1[1] / (h - 1)]],
                                      "object_id": obj, "start_time": 0, "end_time": 0})


def _jaccard(a, b):
    return np.count_nonzero(a & b) / max(np.count_nonzero(a | b), 1)


def _video(n=10):
    frames, gts = zip(*[_scene(shift=t) for t in range(n)])
    return Video(name="v", frames=list(frames), frame_names=[f"{t:05d}" for t in range(n)], object_ids=[1, 2]), gts


def _scribble_both(n, t):
    s = empty_scribbles("v", n)
    _line(s, t, 1, (28 + t, 48), (42 + t, 48))
    _line(s, t, 2, (82 + t, 35), (90 + t, 50))
    return s


@pytest.fixture(scope="module")
def grabcut_method():
    return S2MSTM(device="cpu", interaction="grabcut", threads=1)


def test_registered_by_name_and_options_are_checked():
    method = load_method("s2m-stm", device="cpu", interaction="grabcut")
    assert isinstance(method, S2MSTM) and method.track == "interactive"
    assert method.options["interaction"] == "grabcut" and method.options["stm_weights_sha256"]
    with pytest.raises(VosbenchError, match="interaction"):
        S2MSTM(device="cpu", interaction="magic")
    with pytest.raises(VosbenchError, match="fusion"):
        S2MSTM(device="cpu", interaction="grabcut", fusion="max")


def test_first_interaction_segments_every_frame_and_keeps_scribbled_pixels(grabcut_method):
    video, gts = _video()
    scribbles = _scribble_both(10, 3)
    masks = grabcut_method.interact(video, scribbles, None)
    assert masks.shape == (10, 96, 128) and masks.dtype == np.uint8
    for t in range(10):
        assert _jaccard(masks[t] == 1, gts[t] == 1) > 0.7 and _jaccard(masks[t] == 2, gts[t] == 2) > 0.7, t
    # The scribbled pixels carry their ids on their frame.
    assert masks[3][48, 28 + 3] == 1 and masks[3][35, 82 + 3] == 2


def test_propagation_stops_at_interacted_frames(grabcut_method):
    video, _ = _video()
    first = grabcut_method.interact(video, _scribble_both(10, 2), None)
    second = grabcut_method.interact(video, _scribble_both(10, 7), first)
    assert np.array_equal(second[:3], first[:3])            # up to and with the interacted frame 2
    third = grabcut_method.interact(video, _scribble_both(10, 5), second)
    assert np.array_equal(third[:3], second[:3]) and np.array_equal(third[7:], second[7:])
    state = grabcut_method._states["v"]
    assert sorted(state.memory) == [2, 5, 7]                # the memory holds every interacted frame


def test_linear_fusion_weighs_the_new_propagation_by_distance():
    video, _ = _video()
    fused = S2MSTM(device="cpu", interaction="grabcut", fusion="linear", threads=1)
    masks = fused.interact(video, _scribble_both(10, 2), None)
    masks = fused.interact(video, _scribble_both(10, 8), masks)
    replaced = copy.deepcopy(fused)
    replaced.fusion = "none"
    old = fused._states["v"].probs[5].clone()
    fused.interact(video, _scribble_both(10, 4), masks)
    replaced.interact(video, _scribble_both(10, 4), masks)
    # Frame 5 is the first frame propagated from 4 (same memory both ways); the other interacted
    # frame of that stretch is 8, so the new propagation weighs |5 - 8| / |4 - 8| = 0.75.
    new = replaced._states["v"].probs[5]
    expected = 0.75 * new + 0.25 * old
    assert torch.allclose(fused._states["v"].probs[5], expected, atol=1e-5)
    # Frames before the interacted frame 2 are not propagated again, fused or not.
    assert torch.equal(fused._states["v"].probs[0], replaced._states["v"].probs[0])


def _random_fusion_weights(path):
    """Fusion weights whose correction is not zero (an untrained network gives the linear rule)."""
    torch.manual_seed(0)
    net = FusionNet()
    torch.nn.init.normal_(net.head.weight, std=0.1)
    torch.nn.init.constant_(net.head.bias, -0.5)
    return export_weights(net, path)


def test_untrained_fusion_network_gives_the_linear_rule():
    from vosbench_baselines.stm import aggregate

    torch.manual_seed(0)
    old, new = torch.rand(2, 24, 40), torch.rand(2, 24, 40)
    new = new / new.sum(0).clamp(min=1)         # object probabilities sum to at most 1
    feats8 = torch.randn(1, 40, 3, 5)
    fused = fuse(FusionNet().eval(), old, new, 0.25, 1, 3, feats8)
    linear = (0.25 * new + 0.75 * old).clamp(1e-4, 1 - 1e-4)
    expected = torch.softmax(aggregate(torch.log(linear / (1 - linear))[None]), dim=1)[0, 1:]
    assert fused.shape == (2, 24, 40) and torch.allclose(fused, expected, atol=1e-5)


def test_learned_fusion_runs_and_differs_from_linear_only_between_interacted_frames(tmp_path):
    video, gts = _video()
    trained = DEFAULT_FUSION_WEIGHTS.is_file()
    weights = DEFAULT_FUSION_WEIGHTS if trained else _random_fusion_weights(tmp_path / "fusion.pt")
    learned = S2MSTM(device="cpu", interaction="grabcut", fusion="learned", fusion_weights=weights, threads=1)
    linear = S2MSTM(device="cpu", interaction="grabcut", fusion="linear", threads=1)
    assert learned.options["fusion"] == "learned" and learned.options["fusion_weights_sha256"]
    assert "fusion_weights_sha256" not in linear.options
    first = [m.interact(video, _scribble_both(10, 2), None) for m in (learned, linear)]
    assert np.array_equal(first[0], first[1])            # a first interaction has nothing to fuse
    second = [m.interact(video, _scribble_both(10, 8), f) for m, f in zip((learned, linear), first)]
    a, b = learned._states["v"].probs, linear._states["v"].probs
    # Frame 9 lies beyond the last interacted frame: the new propagation replaces, as with linear.
    assert torch.equal(a[9], b[9])
    # Frames 3-7 lie between the interacted frames 2 and 8: fused, differently.
    for i in range(3, 8):
        assert not torch.allclose(a[i], b[i], atol=1e-3), i
    assert second[0].shape == (10, 96, 128) and second[0].dtype == np.uint8
    if trained:      # the trained fusion still finds the objects between the interacted frames
        for i in range(3, 8):
            assert _jaccard(second[0][i] == 1, gts[i] == 1) > 0.7 and _jaccard(second[0][i] == 2, gts[i] == 2) > 0.7


def test_learned_fusion_weights_are_checked(tmp_path):
    with pytest.raises(InputError, match="missing-fusion.pt"):
        S2MSTM(device="cpu", interaction="grabcut", fusion="learned", fusion_weights=tmp_path / "missing-fusion.pt")
    export_weights(S2MNet(), tmp_path / "s2m-instead.pt")
    with pytest.raises(InputError, match="s2m-instead.pt"):
        load_fusion(tmp_path / "s2m-instead.pt")
    with pytest.raises(VosbenchError, match="fusion must be one of linear, none, learned"):
        S2MSTM(device="cpu", interaction="grabcut", fusion="Learned")
    # The default stays the linear rule.
    assert S2MSTM(device="cpu", interaction="grabcut").fusion == "linear"


@pytest.mark.skipif(not DEFAULT_FUSION_WEIGHTS.is_file(), reason="no committed fusion weights")
def test_committed_fusion_weights_load_strictly():
    net = load_fusion(DEFAULT_FUSION_WEIGHTS)
    assert net.head.weight.abs().sum() > 0             # trained: not the linear rule


def test_fusion_training_writes_loadable_weights_resumes_and_checks_options(tmp_path):
    from vosbench.io.synthetic import default_dataset_root
    from vosbench.methods.training import TrainConfig

    root = default_dataset_root()
    cache = tmp_path / "data" / "fusion.npz"
    options = {"part": "fusion", "cache": str(cache), "davis_videos": 1, "pairs_per_sequence": 1,
               "frames_per_pair": 2, "min_gap": 2, "max_gap": 3, "crop": [64, 64], "warmup": 1}
    config = TrainConfig(data=root, out=tmp_path / "run", dataset="synthetic", split="train", steps=2,
                         batch_size=2, checkpoint_every=1, device="cpu", threads=1, progress=False, options=options)
    summary = S2MSTM.train(config)
    assert summary.steps == 2 and cache.is_file()
    net = load_fusion(summary.weights)
    assert net.head.weight.abs().sum() > 0               # it trained
    with np.load(cache) as blob:
        assert blob["old"].shape[0] == 2 and blob["old"].dtype == np.uint8
        assert blob["feats8"].shape[1:2] == (40,) and np.all((blob["w"] > 0) & (blob["w"] < 1))
    resumed = S2MSTM.train(TrainConfig(**{**config.__dict__, "steps": 3, "resume": True}))
    assert resumed.steps == 3
    # The cache is reused only for the same recipe.
    with pytest.raises(InputError, match="another recipe"):
        S2MSTM.train(TrainConfig(**{**config.__dict__, "out": tmp_path / "other",
                                    "options": {**options, "max_gap": 4}}))
    with pytest.raises(VosbenchError, match="unknown s2m-stm fusion training option"):
        S2MSTM.train(TrainConfig(**{**config.__dict__, "out": tmp_path / "bad", "options": {**options, "crops": 3}}))
    with pytest.raises(VosbenchError, match="part must be one of s2m, fusion"):
        S2MSTM.train(TrainConfig(**{**config.__dict__, "out": tmp_path / "bad", "options": {"part": "fuse"}}))


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_simulated_errors(kind):
    _, gt = _scene()
    gt = gt == 1
    rng = np.random.default_rng(0)
    others = np.zeros_like(gt)
    others[20:40, 70:100] = True
    wrong = simulate_error(gt, kind, rng, neighbour=np.roll(gt, 5, axis=1), others=others)
    assert wrong.shape == gt.shape and wrong.dtype == bool
    if kind == "empty":
        assert not wrong.any()
    else:
        assert not np.array_equal(wrong, gt)
    if kind in ("erode", "cut"):
        assert not (wrong & ~gt).any() and wrong.sum() < gt.sum()
    if kind in ("dilate", "merge"):
        assert not (gt & ~wrong).any() and wrong.sum() > gt.sum()


class _Frames:
    """Two sequences of the toy scene, in the shape of TrainingFrames."""

    sequences = ["a", "b"]

    def length(self, sequence):
        return 6

    def image(self, sequence, index):
        return _scene(index + (0 if sequence == "a" else 20))[0]

    def mask(self, sequence, index):
        return _scene(index + (0 if sequence == "a" else 20))[1]


def _sampler(seed):
    from vosbench_baselines.data import Augment, ClipSampler

    clips = ClipSampler(_Frames(), clip_length=2, max_skip=3, augment=Augment(crop=(64, 64)), seed=seed)
    return S2MSampler(clips, seed=seed)


def test_training_samples_are_seeded_and_resume_exactly():
    a, b = _sampler(3), _sampler(3)
    for x, y in zip(a.batch(2), b.batch(2)):
        assert np.array_equal(x, y)
    state = copy.deepcopy(a.state_dict())
    following = a.batch(2)
    c = _sampler(99)
    c.load_state_dict(state)
    for x, y in zip(following, c.batch(2)):
        assert np.array_equal(x, y)
    images, guidance, target = following
    assert images.shape == (2, 64, 64, 3) and guidance.shape == (2, 3, 64, 64) and target.shape == (2, 1, 64, 64)
    # Every sample carries robot scribbles: positive or negative.
    assert all(g[1:].any() for g in guidance)
    # Positive scribbles lie on the object, negative ones off it (drawn 3 pixels wide, a Bezier curve
    # through the error's skeleton: a few pixels may fall beside it).
    positive, negative = guidance[:, 1].sum(), guidance[:, 2].sum()
    assert (guidance[:, 1] * target[:, 0]).sum() >= 0.9 * positive
    assert (guidance[:, 2] * (1 - target[:, 0])).sum() >= 0.9 * negative


def test_weights_round_trip_and_a_wrong_file_is_refused(tmp_path):
    net = S2MNet()
    path = export_weights(net, tmp_path / "final.pt")
    loaded = load_s2m(path)
    for k, v in net.state_dict().items():
        assert torch.allclose(loaded.state_dict()[k], v.half().float())
    export_weights(torch.nn.Linear(2, 2), tmp_path / "other.pt")
    with pytest.raises(InputError, match="other.pt"):
        load_s2m(tmp_path / "other.pt")
    with pytest.raises(InputError, match="missing.pt"):
        load_s2m(tmp_path / "missing.pt")


@pytest.mark.slow
def test_training_writes_loadable_weights_and_resumes(tmp_path, monkeypatch):
    from vosbench.io.synthetic import default_dataset_root
    from vosbench.methods.training import TrainConfig

    root = default_dataset_root()
    config = TrainConfig(data=root, out=tmp_path / "run", dataset="synthetic", split="train", steps=2,
                         batch_size=2, checkpoint_every=1, device="cpu", threads=1, progress=False,
                         options={"crop": 64, "synthetic_sequences": 0})
    summary = S2MSTM.train(config)
    assert summary.steps == 2 and summary.weights is not None
    load_s2m(summary.weights)
    resumed = S2MSTM.train(TrainConfig(**{**config.__dict__, "steps": 3, "resume": True}))
    assert resumed.steps == 3
    with pytest.raises(VosbenchError, match="unknown s2m-stm training option"):
        S2MSTM.train(TrainConfig(**{**config.__dict__, "out": tmp_path / "bad", "options": {"crops": 3}}))


class _MovingFrames:
    """One sequence of 6 frames at 96x128: a red ellipse (the object) moves right; from the second frame
    on a red disk that is not the object sits in a corner, which STM's propagation takes for it."""

    sequences = ["moving"]

    def length(self, sequence):
        return 6

    def image(self, sequence, index):
        image = _elongated_scene(shift=4 * index)[0]
        if index:
            cv2.circle(image, (18, 82), 11, (200, 40, 40), -1)
        return image

    def mask(self, sequence, index):
        return (_elongated_scene(shift=4 * index)[1] == 1).astype(np.uint8)


def test_real_propagation_errors_are_stm_propagations_cached_by_recipe(tmp_path):
    from vosbench_baselines.s2m import STM_WEIGHTS, PropagatedErrors

    frames = _MovingFrames()
    cache = tmp_path / "propagation-errors.npz"
    first = PropagatedErrors(frames, ["moving"], cache, STM_WEIGHTS, "cpu", 1)
    assert cache.is_file()
    for direction, start in ((0, 0), (1, 5)):
        # The start frame holds the ground truth; the others what STM made of it: close, not equal.
        assert np.array_equal(first.mask("moving", direction, start), frames.mask("moving", start) > 0)
        others = [first.mask("moving", direction, i) for i in range(6) if i != start]
        truths = [frames.mask("moving", i) > 0 for i in range(6) if i != start]
        assert all(_jaccard(m, g) > 0.5 for m, g in zip(others, truths))
        assert any(not np.array_equal(m, g) for m, g in zip(others, truths))
    # A second reader takes the cache (same masks); another recipe (other sequences) computes again.
    again = PropagatedErrors(frames, ["moving"], cache, STM_WEIGHTS, "cpu", 1)
    assert all(np.array_equal(first.mask("moving", d, i), again.mask("moving", d, i)) for d in (0, 1) for i in range(6))
    stamp = cache.stat().st_mtime_ns
    PropagatedErrors(frames, ["moving"], cache, STM_WEIGHTS, "cpu", 1)
    assert cache.stat().st_mtime_ns == stamp


class _ShiftedSource:
    """A stand-in for `PropagatedErrors` whose 'propagated' masks are the ground truth shifted down 8 px."""

    def __init__(self, frames):
        self.frames, self.sequences = frames, frames.sequences

    def mask(self, sequence, direction, index):
        return np.roll(self.frames.mask(sequence, index) > 0, 8, axis=0)


def test_samples_with_real_propagation_errors_take_the_propagated_mask_as_the_wrong_one():
    from vosbench_baselines.data import Augment, ClipSampler

    frames = _MovingFrames()

    def sampler(seed, share):
        clips = ClipSampler(frames, clip_length=2, max_skip=3, augment=Augment(crop=(64, 64), rotation=0.0,
                                                                              flip=False, scale=(1.0, 1.0)),
                            seed=seed, min_object_pixels=20)
        return S2MSampler(clips, seed=seed, propagated=_ShiftedSource(frames), propagation_share=share)

    images, guidance, target = sampler(5, 1.0).batch(3)
    for x, y in zip((images, guidance, target), sampler(5, 1.0).batch(3)):
        assert np.array_equal(x, y)
    # Without rotation or random zoom, the wrong mask (guidance channel 0) is the target shifted down
    # 8 pixels of the 96-row frame, 16/3 at the 64-pixel crop: warped with the frame, not drawn anew.
    for g, t in zip(guidance, target):
        wrong, truth = g[0] > 0, t[0] > 0
        assert g[1:].any() and not np.array_equal(wrong, truth)
        (wy, wx), (ty, tx) = (np.argwhere(m).mean(axis=0) for m in (wrong, truth))
        assert 4.3 < wy - ty < 6.3 and abs(wx - tx) < 0.5
    # share 0: the first recipe's samples, whatever source is given.
    plain = S2MSampler(ClipSampler(frames, clip_length=2, max_skip=3, augment=Augment(crop=(64, 64)), seed=5,
                                   min_object_pixels=20), seed=5)
    off = S2MSampler(ClipSampler(frames, clip_length=2, max_skip=3, augment=Augment(crop=(64, 64)), seed=5,
                                 min_object_pixels=20), seed=5, propagated=_ShiftedSource(frames),
                     propagation_share=0.0)
    for x, y in zip(plain.batch(2), off.batch(2)):
        assert np.array_equal(x, y)


def _elongated_scene(shift: int = 0):
    """A red ellipse (object 1) and a blue rectangle (object 2): shapes the robot scribbles (a disk's medial
    axis is too short for it)."""
    rng = np.random.default_rng(0)
    image = (rng.normal(128, 6, (96, 128, 3))).clip(0, 255).astype(np.uint8)
    gt = np.zeros((96, 128), np.uint8)
    cv2.ellipse(gt, (35 + shift, 48), (26, 12), 30, 0, 360, 1, -1)
    cv2.rectangle(gt, (75 + shift, 25), (100 + shift, 70), 2, -1)
    image[gt == 1] = (200, 40, 40)
    image[gt == 2] = (40, 40, 200)
    return image, gt


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no committed scribble-to-mask weights")
def test_network_step_turns_robot_scribbles_into_objects():
    from vosbench.tracks.interactive.robot import ScribbleRobot

    frames, gts = zip(*[_elongated_scene(shift=t) for t in range(4)])
    gts = np.stack(gts)
    video = Video(name="v", frames=list(frames), frame_names=[f"{t:05d}" for t in range(4)], object_ids=[1, 2])
    method = S2MSTM(device="cpu", threads=1)
    first = ScribbleRobot().interact("v", np.zeros_like(gts), gts, 2, frame=1)
    assert {s["object_id"] for s in first["scribbles"][1]} == {1, 2}
    masks = method.interact(video, first, None)
    assert _jaccard(masks[1] == 1, gts[1] == 1) > 0.6 and _jaccard(masks[1] == 2, gts[1] == 2) > 0.6
    # A background scribble across object 2 removes that part of it.
    s = empty_scribbles("v", 4)
    _line(s, 1, 0, (76, 30), (102, 30))
    after = method.interact(video, s, masks)
    assert np.count_nonzero(after[1][26:34, 76:102] == 2) < 0.5 * np.count_nonzero(masks[1][26:34, 76:102] == 2)


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no committed scribble-to-mask weights")
def test_real_sequence_improves_over_interactions(davis2016_root):
    from vosbench.io.factory import open_dataset
    from vosbench.tracks.interactive.session import SessionParams, find_samples, run_session

    dataset = open_dataset("davis2016", davis2016_root, split="val")
    method = S2MSTM(device="cpu", threads=1)
    result = run_session(dataset, method, SessionParams(max_interactions=3),
                         samples=find_samples(dataset, sequences=["blackswan"]))
    jf = result.report.groupby("interaction")["j_and_f"].mean().to_numpy()
    assert jf[0] > 0.6 and jf[-1] >= jf[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_masks():
    video, _ = _video(6)
    interaction = "network" if DEFAULT_WEIGHTS.is_file() else "grabcut"
    cpu = S2MSTM(device="cpu", interaction=interaction, threads=1).interact(video, _scribble_both(6, 2), None)
    gpu = S2MSTM(device="cuda", interaction=interaction).interact(video, _scribble_both(6, 2), None)
    assert np.mean(cpu == gpu) > 0.99
