"""stm-official computes what the authors' STM code computes (golden.npz, from make_golden.py).

The network's parameters are drawn again from the same seeded generators (seeded.py); no
checkpoint is stored.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import seeded
from vosbench.methods.base import Video
from vosbench_baselines.official import STMOfficial, STMOfficialNet, official_key_spec, pad_divide_by

GOLDEN = Path(__file__).with_name("golden.npz")


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN)


@pytest.fixture(scope="module")
def net():
    torch.set_num_threads(1)
    model = STMOfficialNet()
    model.load_state_dict(seeded.stm_state(official_key_spec("stm")), strict=True)
    return model.eval()


def frame_tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.transpose(frame / 255., (2, 0, 1)).copy()).float()[None]


def assert_relative(actual, expected, tol=1e-4):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    scale = max(np.abs(expected).max(), 1e-12)
    worst = np.abs(actual - expected).max() / scale
    assert worst <= tol, f"largest difference {worst:.2e} of the largest value"


def test_padding_is_split_between_both_sides():
    x = torch.ones(1, 1, 44, 57)
    [padded], pad = pad_divide_by([x])
    assert padded.shape[-2:] == (48, 64)
    assert pad == (3, 4, 2, 2)          # as the authors' pad_divide_by: int(7 / 2) left, the rest right
    assert padded[0, 0, 2, 3] == 1 and padded[0, 0, 1, 3] == 0 and padded[0, 0, 2, 2] == 0
    assert padded[0, 0, 45, 59] == 1 and padded[0, 0, 46, 59] == 0 and padded[0, 0, 45, 60] == 0


@pytest.mark.parametrize("size", seeded.STM_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_memorize_and_segment_match_the_authors(golden, net, size):
    i = seeded.STM_SIZES.index(size)
    tag = f"stm_{size[0]}x{size[1]}"
    frames = seeded.smooth_frames(3, size, seed=100 + i)
    masks = [torch.from_numpy(seeded.soft_masks(size, 2, seeded.STM_K, seed=200 + 10 * i + j))[None] for j in range(2)]
    with torch.no_grad():
        k0, v0 = net.memorize(frame_tensor(frames[0]), masks[0], 2)
        k1, v1 = net.memorize(frame_tensor(frames[1]), masks[1], 2)
        keys, values = torch.cat([k0, k1], dim=2), torch.cat([v0, v1], dim=2)
        logit = net.segment(frame_tensor(frames[2]), keys, values, seeded.STM_K)
    assert logit.shape == (1, seeded.STM_K) + size
    assert_relative(keys.numpy(), golden[f"{tag}_keys"])
    assert_relative(values.numpy(), golden[f"{tag}_values"])
    assert_relative(logit[0, :4].numpy(), golden[f"{tag}_logit"])
    # The unused channels hold the clamped odds 1e-7, so they add to the softmax's denominator.
    assert torch.allclose(logit[0, 3:], torch.tensor(float(np.log(1e-7 / (1 - 1e-7)))))


def test_the_video_loop_labels_as_the_authors(golden, net):
    t_count, size = seeded.LOOP_FRAMES, seeded.LOOP_SIZE
    frames = seeded.smooth_frames(t_count, size, seed=300)
    first = seeded.two_objects(size)
    video = Video("loop", list(frames), [f"{t:05d}" for t in range(t_count)], {0: first}, [1, 2])
    method = STMOfficial(device="cpu", memory_every=seeded.LOOP_EVERY)
    method._net, method.torch_device = net, "cpu"          # the seeded network instead of a weights file
    labels = np.stack(list(method.segment(video)))
    expected = golden["stm_loop_labels"]
    assert labels.shape == expected.shape
    # Both objects are present after the first frame, so agreement is not the trivial all-background.
    assert all(len(np.unique(lab)) >= 2 for lab in expected[1:])
    agreement = float((labels[1:] == expected[1:]).mean())
    assert agreement >= 0.999, f"labels agree on {agreement:.4%} of pixels"


class _MemoryTracer:
    """Stands in for the network: a key's value is the index of the frame it was made from."""

    def __init__(self):
        self.memory: list[list[int]] = []

    def memorize(self, frame, masks, num_objects):
        value = torch.full((num_objects, 1, 1, 1, 1), float(frame[0, 0, 0, 0] * 255))
        return value, value

    def segment(self, frame, keys, values, channels):
        self.memory.append([int(round(float(x))) for x in keys[0, 0, :, 0, 0]])
        logit = torch.full((1, channels) + tuple(frame.shape[-2:]), -10.0)
        logit[:, 1] = 0.0
        return logit


def test_frames_in_memory_are_the_authors(golden):
    count = seeded.SCHEDULE_FRAMES
    frames = [np.full((4, 4, 3), t, np.uint8) for t in range(count)]
    first = np.ones((4, 4), np.uint8)
    video = Video("schedule", frames, [f"{t:05d}" for t in range(count)], {0: first}, [1])
    method = STMOfficial(device="cpu", memory_every=seeded.SCHEDULE_EVERY)
    tracer = _MemoryTracer()
    method._net, method.torch_device = tracer, "cpu"
    assert len(list(method.segment(video))) == count
    expected = [[int(f) for f in row if f >= 0] for row in golden["stm_memory_frames"]]
    assert tracer.memory == expected
    assert expected[6] == [0, 5, 6] and expected[-1] == [0, 5, 10, 15, 20, 21]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_video_loop_on_cuda_labels_as_the_authors(golden):
    """The same loop on the GPU (cuDNN, no TF32 for this check) against the authors' CPU labels."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = STMOfficialNet()
    model.load_state_dict(seeded.stm_state(official_key_spec("stm")), strict=True)
    t_count, size = seeded.LOOP_FRAMES, seeded.LOOP_SIZE
    frames = seeded.smooth_frames(t_count, size, seed=300)
    video = Video("loop", list(frames), [f"{t:05d}" for t in range(t_count)], {0: seeded.two_objects(size)}, [1, 2])
    method = STMOfficial(device="cuda", memory_every=seeded.LOOP_EVERY)
    method._net, method.torch_device = model.to("cuda").eval(), "cuda"
    labels = np.stack(list(method.segment(video)))
    agreement = float((labels[1:] == golden["stm_loop_labels"][1:]).mean())
    assert agreement >= 0.999, f"labels agree on {agreement:.4%} of pixels"
