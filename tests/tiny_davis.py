"""A tiny DAVIS 2017-layout folder (masks only) for evaluator tests, built from explicit arrays."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vosbench.io import write_mask


def moving_boxes(n_frames: int, height: int, width: int, n_objects: int, seed: int) -> np.ndarray:
    """Objects as boxes drifting over the frame; ids 1..n_objects; (T, H, W) uint8."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_frames, height, width), np.uint8)
    starts = rng.integers(0, [height // 2, width // 2], size=(n_objects, 2))
    sizes = rng.integers(3, [height // 2, width // 2], size=(n_objects, 2))
    for t in range(n_frames):
        for k in range(n_objects):
            y, x = starts[k] + t
            h, w = sizes[k]
            masks[t, y % height: y % height + h, x % width: x % width + w] = k + 1
    return masks


def write_davis(root: Path, sequences: dict[str, np.ndarray], split: str = "val", year: int = 2017) -> Path:
    """Write ground truth as ``root/Annotations/480p/<seq>/NNNNN.png`` plus ``ImageSets/<year>/<split>.txt``."""
    for name, masks in sequences.items():
        write_sequence(root / "Annotations" / "480p" / name, masks)
    (root / "ImageSets" / str(year)).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / str(year) / f"{split}.txt").write_text("\n".join(sequences) + "\n")
    return root


def write_sequence(folder: Path, masks: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for t, mask in enumerate(masks):
        write_mask(folder / f"{t:05d}.png", mask)


def write_frames(root: Path, sequences: dict[str, np.ndarray], seed: int = 0) -> Path:
    """Write ``root/JPEGImages/480p/<seq>/NNNNN.jpg``: each object a flat colour over a still noise background."""
    import cv2

    rng = np.random.default_rng(seed)
    for name, masks in sequences.items():
        folder = root / "JPEGImages" / "480p" / name
        folder.mkdir(parents=True, exist_ok=True)
        background = rng.integers(0, 120, masks.shape[1:] + (3,), dtype=np.uint8)
        colours = rng.integers(150, 256, (int(masks.max()) + 1, 3), dtype=np.uint8)
        for t, mask in enumerate(masks):
            frame = background.copy()
            frame[mask > 0] = colours[mask[mask > 0]]
            cv2.imwrite(str(folder / f"{t:05d}.jpg"), frame)
    return root
