"""Training samplers: shapes, seeding, resumable streams, objects visible on the first frame,
and DAVIS 2016's 480p masks brought to its 240p train frames."""
from __future__ import annotations

import numpy as np
import pytest

from vosbench.io.datasets import DavisDataset
from vosbench_baselines.data import Augment, ClipSampler, FrameSampler, InMemoryFrames, TrainingFrames, dreamed_frames


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> TrainingFrames:
    from vosbench.io.synthetic import SyntheticParams, generate_dataset

    params = SyntheticParams(n_sequences=6, n_frames=8, height=96, width=128, max_objects=3)
    root = generate_dataset(tmp_path_factory.mktemp("data") / "synthetic", seed=11, params=params)
    return TrainingFrames(DavisDataset(root, year=2017, split="train"))


def _sampler(frames, seed=0, **kw) -> ClipSampler:
    return ClipSampler(frames, clip_length=3, max_skip=3, augment=Augment(crop=(48, 64)), seed=seed,
                       min_object_pixels=10, **kw)


def test_clips_have_the_asked_shape_and_objects_on_the_first_frame(frames):
    sampler = _sampler(frames, static_fraction=0.3, mix_fraction=0.5)
    images, masks, counts = sampler.batch(6)
    assert images.shape == (6, 3, 48, 64, 3) and images.dtype == np.uint8
    assert masks.shape == (6, 3, 48, 64) and masks.dtype == np.uint8
    for clip_masks, count in zip(masks, counts):
        assert count >= 1
        assert set(np.unique(clip_masks[0])) == set(range(count + 1))   # ids 1..K, all on frame 0
        assert clip_masks.max() <= count and VOID not in clip_masks


VOID = 255


def test_same_seed_same_clips_and_state_resumes_the_stream(frames):
    a, b = _sampler(frames, seed=3), _sampler(frames, seed=3)
    np.testing.assert_array_equal(a.batch(2)[0], b.batch(2)[0])
    assert not np.array_equal(_sampler(frames, seed=4).batch(2)[0], _sampler(frames, seed=3).batch(2)[0])
    state = a.state_dict()
    after = a.batch(2)
    fresh = _sampler(frames, seed=99)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.batch(2)[1], after[1])


def test_clip_frames_are_in_order_within_max_skip(frames):
    sampler = _sampler(frames)
    for _ in range(20):
        clip = sampler.sample()
        idx = [i for _, i in clip.source[:3]]
        gaps = np.diff(idx)
        assert np.all(np.abs(gaps) <= 3)
        assert np.all(gaps >= 0) or np.all(gaps <= 0)


def test_static_clips_repeat_one_source_frame(frames):
    sampler = _sampler(frames, static_fraction=1.0)
    clip = sampler.sample()
    assert len({s for s in clip.source}) == 1
    assert not np.array_equal(clip.images[0], clip.images[1])   # but warped differently


def test_frame_sampler(frames):
    image, mask = FrameSampler(frames, augment=Augment(crop=(32, 40)), seed=1).sample()
    assert image.shape == (32, 40, 3) and mask.shape == (32, 40)


@pytest.mark.shared
def _two_object_frame():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 60, (80, 120, 3), dtype=np.uint8)          # dark noise background
    mask = np.zeros((80, 120), np.uint8)
    mask[20:40, 20:45] = 1
    mask[45:70, 70:100] = 2
    image[mask == 1] = (250, 30, 30)
    image[mask == 2] = (30, 30, 250)
    return image, mask


def test_dreamed_frames_move_each_object_with_its_own_pixels_over_a_filled_background():
    image, mask = _two_object_frame()
    images, masks = dreamed_frames(image, mask, 6, np.random.default_rng(0))
    assert len(images) == len(masks) == 6
    np.testing.assert_array_equal(images[0], image)
    np.testing.assert_array_equal(masks[0], mask)
    moved = 0
    for scene, scene_mask in zip(images[1:], masks[1:]):
        assert scene.shape == image.shape and scene.dtype == np.uint8 and scene_mask.shape == mask.shape
        for obj, colour in ((1, (250, 30, 30)), (2, (30, 30, 250))):
            region = scene_mask == obj
            assert region.any()
            # The object keeps its pixels (zoom 0.85-1.15: area within about 0.7-1.35x) ...
            assert 0.6 * (mask == obj).sum() < region.sum() < 1.4 * (mask == obj).sum()
            assert np.abs(scene[region].astype(int) - colour).max(axis=1).mean() < 40
            moved += not np.array_equal(region, mask == obj)
        # ... and where no object now is, the background shows, with no object colour left behind.
        empty = scene_mask == 0
        assert (scene[empty].max(axis=1) < 200).mean() > 0.97
    assert moved == 10


def test_dreamed_frames_are_seeded_and_in_memory_frames_feed_the_clip_sampler():
    image, mask = _two_object_frame()
    a = dreamed_frames(image, mask, 4, np.random.default_rng(5))
    b = dreamed_frames(image, mask, 4, np.random.default_rng(5))
    c = dreamed_frames(image, mask, 4, np.random.default_rng(6))
    assert all(np.array_equal(x, y) for x, y in zip(a[1], b[1]))
    assert not all(np.array_equal(x, y) for x, y in zip(a[1][1:], c[1][1:]))
    scenes = InMemoryFrames(*a)
    sampler = ClipSampler(scenes, clip_length=3, max_skip=4, augment=Augment(crop=(48, 64)), seed=0,
                          static_fraction=0.5, min_object_pixels=10)
    images, masks, counts = sampler.batch(4)
    assert images.shape == (4, 3, 48, 64, 3) and masks.shape == (4, 3, 48, 64)
    assert (counts >= 1).all()


def test_davis2016_train_masks_are_resized_to_the_240p_frames(davis2016_root):
    data = TrainingFrames(DavisDataset(davis2016_root, year=2016, split="train"), sequences=["bear"])
    image, mask = data.image("bear", 0), data.mask("bear", 0)
    assert image.shape[:2] == mask.shape == (240, 427)
    assert set(np.unique(mask)) == {0, 1}
    # Nearest-neighbour keeps the object's share of the frame.
    full = DavisDataset(davis2016_root, year=2016, split="train").read_annotation("bear", "00000")
    assert abs(mask.mean() - (full > 0).mean()) < 0.01
