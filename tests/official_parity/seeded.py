"""Seeded parameters and inputs shared by make_golden.py (run by hand against the authors' code)
and the parity tests (run against vosbench's modules).

Every parameter is drawn from its own generator, seeded from the run's seed and the key's name,
so a state dict depends only on (seed, key, shape) and not on the order of the keys. Scales are
chosen so that a random network stays well-conditioned (activations of order 1, softmaxes not
saturated): fan-in scaled convolutions, BatchNorm scales below one, small biases.
"""
from __future__ import annotations

import zlib

import numpy as np
import torch

STM_SEED = 18
OSVOS_SEED = 180
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _generator(seed: int, key: str) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))


def seeded_tensor(key: str, shape: tuple, seed: int, conv_gain: float) -> torch.Tensor:
    """The value of parameter `key` (a state-dict name) of `shape` under `seed`."""
    g = _generator(seed, key)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return torch.tensor(0, dtype=torch.long)
    if leaf == "mean" and tuple(shape) == (1, 3, 1, 1):
        return torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    if leaf == "std" and tuple(shape) == (1, 3, 1, 1):
        return torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    if leaf == "running_mean":
        return torch.randn(shape, generator=g) * 0.1
    if leaf == "running_var":
        return torch.rand(shape, generator=g) * 0.5 + 0.75
    if leaf == "bias":
        return torch.randn(shape, generator=g) * 0.05
    if leaf == "weight" and len(shape) == 1:   # BatchNorm scale
        return torch.rand(shape, generator=g) * 0.3 + 0.3
    if leaf == "weight" and len(shape) == 4:
        if "upscale" in key:                    # transposed convolutions: (in, out, k, k)
            fan_in = shape[0] * shape[2] * shape[3] / 4.0
        else:
            fan_in = shape[1] * shape[2] * shape[3]
        return torch.randn(shape, generator=g) * (conv_gain / fan_in) ** 0.5
    raise ValueError(f"no rule for {key} {tuple(shape)}")


def seeded_state(spec: dict[str, tuple], seed: int, conv_gain: float = 1.0) -> dict[str, torch.Tensor]:
    return {key: seeded_tensor(key, tuple(shape), seed, conv_gain) for key, shape in spec.items()}


def stm_state(spec: dict[str, tuple]) -> dict[str, torch.Tensor]:
    return seeded_state(spec, STM_SEED, conv_gain=1.0)


def osvos_state(spec: dict[str, tuple]) -> dict[str, torch.Tensor]:
    return seeded_state(spec, OSVOS_SEED, conv_gain=2.0)


# ----------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------

STM_SIZES = [(48, 64), (44, 57)]     # a multiple of 16, and one that is padded (2 + 2, 3 + 4)
STM_K = 11                            # the authors' DAVIS loader's channel count
LOOP_FRAMES, LOOP_SIZE, LOOP_EVERY = 7, (44, 57), 5
SCHEDULE_FRAMES, SCHEDULE_EVERY = 23, 5
OSVOS_SIZES = [(37, 51), (45, 62)]
OSVOS_STEP_SIZE = (41, 53)
ACCUMULATE = 5


def smooth_frames(count: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """(count, H, W, 3) uint8 frames: coarse random blobs that drift, plus a little noise."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = rng.random((6, 3)) * 255
    centres = rng.random((6, 2)) * [h, w]
    moves = rng.normal(0, 1.5, (6, 2))
    frames = []
    for t in range(count):
        image = np.full((h, w, 3), 90.0)
        for k in range(6):
            cy, cx = centres[k] + t * moves[k]
            d2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (0.04 * h * w)
            image += np.exp(-d2)[..., None] * (base[k] - 90.0)
        image += rng.normal(0, 6, image.shape)
        frames.append(np.clip(np.round(image), 0, 255).astype(np.uint8))
    return np.stack(frames)


def two_objects(size: tuple[int, int]) -> np.ndarray:
    """An id map with objects 1 and 2 (an ellipse and a box) that touch."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.zeros(size, np.uint8)
    out[((yy - 0.45 * h) / (0.25 * h)) ** 2 + ((xx - 0.35 * w) / (0.2 * w)) ** 2 <= 1] = 1
    out[int(0.2 * h):int(0.6 * h), int(0.55 * w):int(0.85 * w)] = 2
    return out


def soft_masks(size: tuple[int, int], objects: int, k: int, seed: int) -> np.ndarray:
    """(k, H, W) float32 probabilities: background and `objects` channels from a softmax of smooth
    random logits, the other channels zero (as the authors' memory holds after the first frame)."""
    rng = np.random.default_rng(seed)
    h, w = size
    coarse = rng.normal(0, 2.5, (objects + 1, 4, 5))
    yy = np.linspace(0, 3, h)[:, None]
    xx = np.linspace(0, 4, w)[None, :]
    y0, x0 = np.floor(yy).astype(int).clip(0, 2), np.floor(xx).astype(int).clip(0, 3)
    fy, fx = yy - y0, xx - x0
    logits = (coarse[:, y0, x0] * (1 - fy) * (1 - fx) + coarse[:, y0 + 1, x0] * fy * (1 - fx)
              + coarse[:, y0, x0 + 1] * (1 - fy) * fx + coarse[:, y0 + 1, x0 + 1] * fy * fx)
    e = np.exp(logits - logits.max(0))
    out = np.zeros((k, h, w), np.float32)
    out[: objects + 1] = (e / e.sum(0)).astype(np.float32)
    return out


def osvos_pair(size: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB uint8 frame and a 0/1 uint8 mask of one object."""
    frame = smooth_frames(1, size, seed)[0]
    mask = (two_objects(size) == 1).astype(np.uint8)
    return frame, mask
