"""What OSVOS and MaskTrack share: the single-frame segmentation network on the EfficientNet-Lite0
encoder, its losses, augmentation, tensor utilities, weights I/O, online fine-tuning and
offline training.

Each method's specifics stay in its own module (`osvos`, `masktrack`): the network it builds,
what its training and fine-tuning feed besides the frame, and its inference loop. This module
imports neither.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vosbench.errors import InputError
from vosbench.methods.device import prepare_torch
from vosbench_baselines.encoder import CHANNELS, EfficientNetLite0

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_FORMAT = 1
# Blocks 0..2 (stride <= 4) keep their ImageNet weights: low-level filters transfer as they are,
# and freezing them makes both offline and online training several times cheaper.
FROZEN_BLOCKS = 3


# ----------------------------------------------------------------------------------------
# Losses and augmentation
# ----------------------------------------------------------------------------------------


def class_balanced_bce(logits: torch.Tensor, target: torch.Tensor, reduction_sum: bool = False) -> torch.Tensor:
    """OSVOS's class-balanced cross-entropy: foreground and background terms weighted by the other's share.

    reduction_sum: sum over pixels (the authors' online setting) instead of the mean.
    """
    target = (target >= 0.5).float()
    per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    n_pos = target.sum()
    n_neg = target.numel() - n_pos
    total = float(target.numel())
    loss = (n_neg / total) * (per_pixel * target).sum() + (n_pos / total) * (per_pixel * (1 - target)).sum()
    return loss if reduction_sum else loss / total


def soft_iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Jaccard per image, averaged: a direct handle on the J measure."""
    prob = torch.sigmoid(logits).flatten(1)
    target = target.flatten(1)
    inter = (prob * target).sum(1)
    union = (prob + target - prob * target).sum(1)
    return (1 - (inter + 1) / (union + 1)).mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Class-balanced cross-entropy (as OSVOS) plus soft IoU."""
    return class_balanced_bce(logits, target) + soft_iou_loss(logits, target)


def augment_pair(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, rotate: float = 30.0,
                 scales: tuple[float, float] = (0.75, 1.25), flip: bool = True,
                 crop: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One random flip / zoom / rotation of a frame and its mask (the online augmentation of vosbench's
    OSVOS and MaskTrack: log-uniform zoom about the frame's or a crop's centre, linear interpolation
    of the uint8 frame, reflected borders; `official.osvos_augment` is the authors').

    crop: output (height, width) taken around a random point of the object; None keeps the frame size.
    """
    h, w = mask.shape
    out_h, out_w = crop or (h, w)
    scale = float(np.exp(rng.uniform(np.log(scales[0]), np.log(scales[1]))))
    angle = float(rng.uniform(-rotate, rotate))
    ys, xs = np.nonzero(mask)
    if crop is not None and len(ys):
        k = int(rng.integers(0, len(ys)))
        # Between the object's centre and a random pixel of it, so crops show its context and its edges.
        cy, cx = (ys.mean() + ys[k]) / 2, (xs.mean() + xs[k]) / 2
    else:
        cy, cx = h / 2, w / 2
    matrix = cv2.getRotationMatrix2D((float(cx), float(cy)), angle, scale)
    matrix[:, 2] += (out_w / 2 - cx, out_h / 2 - cy)
    if flip and rng.random() < 0.5:
        matrix = np.array([[-1.0, 0.0, out_w - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([matrix, [0, 0, 1]])
    out_image = cv2.warpAffine(image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    out_mask = cv2.warpAffine(mask, matrix, (out_w, out_h), flags=cv2.INTER_NEAREST, borderValue=0)
    return out_image, out_mask


def resize_short_side(image: np.ndarray, short_side: int | None, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    if not short_side:
        return image
    h, w = image.shape[:2]
    factor = short_side / min(h, w)
    if factor >= 1 - 1e-6:   # only ever shrink: small videos are segmented at their own size
        return image
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(image, size, interpolation=interpolation if factor < 1 else cv2.INTER_LINEAR)


def to_tensor(images: np.ndarray, device: str | torch.device) -> torch.Tensor:
    """``(H, W, 3)`` or ``(B, H, W, 3) uint8`` -> ``(B, 3, H, W) float`` in 0..255 (the encoder normalises)."""
    if images.ndim == 3:
        images = images[None]
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()


# ----------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------


def _conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SideOutputDecoder(nn.Module):
    """Top-down fusion of strides 16, 8 and 4 with a side output at each (OSVOS's deep supervision)."""

    def __init__(self, width: int = 64, in_channels: int | None = None):
        super().__init__()
        self.lateral16 = _conv_bn_relu(in_channels or CHANNELS[16], width, 1)
        self.lateral8 = _conv_bn_relu(CHANNELS[8], width, 1)
        self.lateral4 = _conv_bn_relu(CHANNELS[4], width, 1)
        self.smooth16 = _conv_bn_relu(width, width)
        self.smooth8 = _conv_bn_relu(width, width)
        self.smooth4 = _conv_bn_relu(width, width)
        self.side16 = nn.Conv2d(width, 1, 1)
        self.side8 = nn.Conv2d(width, 1, 1)
        self.fuse = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, features: dict[int, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Fused logits at stride 4 and the side logits at strides 16 and 8."""
        x16 = self.smooth16(self.lateral16(features[16]))
        x8 = self.lateral8(features[8]) + F.interpolate(x16, size=features[8].shape[-2:], mode="bilinear",
                                                         align_corners=False)
        x8 = self.smooth8(x8)
        x4 = self.lateral4(features[4]) + F.interpolate(x8, size=features[4].shape[-2:], mode="bilinear",
                                                         align_corners=False)
        x4 = self.smooth4(x4)
        return self.fuse(x4), [self.side16(x16), self.side8(x8)]


class SegNet(nn.Module):
    """Encoder + side-output decoder; logits at the input size.

    Subclasses may add input channels through `extra_stem` (MaskTrack's mask channel).
    """

    def __init__(self, pretrained: bool = True, width: int = 64):
        super().__init__()
        self.encoder = EfficientNetLite0(pretrained=pretrained)
        self.encoder.freeze(FROZEN_BLOCKS)
        # Nothing past stride 16 runs: keep those blocks and the classifier out of the optimiser.
        for module in [*self.encoder._blocks[11:], self.encoder._conv_head, self.encoder._bn1, self.encoder._fc]:
            for parameter in module.parameters():
                parameter.requires_grad_(False)
        self.decoder = SideOutputDecoder(width)

    def stem(self, images: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder.stem(images)

    def prefix(self, images: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Stem and the frozen blocks: stride-4 features."""
        return self.encoder.run_blocks(self.stem(images, extra), 0, FROZEN_BLOCKS)

    def suffix(self, x4: torch.Tensor, size: tuple[int, int],
               sides: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        x8 = self.encoder.run_blocks(x4, FROZEN_BLOCKS, 5)
        x16 = self.encoder.run_blocks(x8, 5, 11)
        fused, side = self.decoder({4: x4, 8: x8, 16: x16})
        up = F.interpolate(fused, size=size, mode="bilinear", align_corners=False)
        if not sides:
            return up
        return up, [F.interpolate(s, size=size, mode="bilinear", align_corners=False) for s in side]

    def forward(self, images: torch.Tensor, extra: torch.Tensor | None = None, sides: bool = False):
        return self.suffix(self.prefix(images, extra), images.shape[-2:], sides=sides)

    def training_extra(self, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
        """The extra input channel fed with a training sample of ground truth `mask`; None: RGB only."""
        return None

    def param_groups(self, learning_rate: float) -> list[dict[str, Any]]:
        """The optimiser's parameter groups for offline training (``lr_scale``: the group's share of the rate)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": learning_rate, "lr_scale": 1.0}]

    def trained_keys(self) -> list[str]:
        """The state-dict keys that training changes (what a weights file stores)."""
        frozen = ("encoder._conv_stem.", "encoder._bn0.", "encoder._conv_head.", "encoder._bn1.", "encoder._fc.")
        frozen += tuple(f"encoder._blocks.{i}." for i in range(FROZEN_BLOCKS))
        # Blocks past stride 16 are never run.
        frozen += tuple(f"encoder._blocks.{i}." for i in range(11, 16))
        return [k for k in self.state_dict() if not k.startswith(frozen)]


def save_trained(net: SegNet, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write the trained part of `net` in float16 (the shared export format), atomically."""
    from vosbench_baselines.training import export_weights

    return export_weights(net, Path(path), {**meta, "network": type(net).__name__, "format": WEIGHTS_FORMAT},
                          keys=net.trained_keys())


def load_trained(net: SegNet, path: str | Path) -> dict[str, Any]:
    """Load a file written by `save_trained`: every trained key must be present with its shape."""
    from vosbench_baselines.training import load_exported

    path = Path(path)
    state, meta = load_exported(path)
    if meta.get("network") != type(net).__name__ or meta.get("format") != WEIGHTS_FORMAT:
        raise InputError(path, f"holds {meta.get('network', 'another network')}'s weights, not {type(net).__name__}'s "
                               f"(format {WEIGHTS_FORMAT}).", "Pass a weights file trained for this method.")
    expected = net.state_dict()
    wanted = set(net.trained_keys())
    missing, unexpected = sorted(wanted - set(state)), sorted(set(state) - wanted)
    wrong = sorted(k for k in set(state) & wanted if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        raise InputError(path, f"does not fit {type(net).__name__}: missing {missing[:3]}, unexpected {unexpected[:3]}, "
                               f"wrong shape {wrong[:3]}.", "Pass a weights file trained for this network.")
    merged = dict(expected)
    merged.update({k: v.to(expected[k].dtype) for k, v in state.items()})
    net.load_state_dict(merged, strict=True)
    return dict(meta)


# ----------------------------------------------------------------------------------------
# Online fine-tuning and inference
# ----------------------------------------------------------------------------------------


@dataclass
class FinetuneConfig:
    """Online fine-tuning on the first frame.

    Each method sets its own steps and rate (`OSVOS.default_finetune`), chosen on DAVIS 2016
    train videos held out from a parent network's training, never on DAVIS val (see the
    model cards).
    """

    steps: int           # no default: each method chooses its own
    lr: float
    batch: int = 2
    crop: tuple[int, int] = (288, 288)
    rotate: float = 15.0
    # > 0: crops are drawn from that many scenes made of the frame with its object moved over the
    # inpainted background (`data.dreamed_frames`, as Lucid Data Dreaming); 0: the frame alone.
    dreams: int = 0
    scales: tuple[float, float] = (0.8, 1.25)


def finetune_on_frame(net: SegNet, image: np.ndarray, mask: np.ndarray, config: FinetuneConfig,
                      rng: np.random.Generator, device: str | torch.device,
                      extra_of: Any = None, desc: str = "fine-tuning") -> list[float]:
    """Fine-tune `net` in place on one frame; returns the losses.

    extra_of: for networks with an extra input channel, a function (mask, rng) -> the extra
    channel to feed with each augmented frame (MaskTrack feeds a deformed copy of the mask).
    """
    from vosbench_baselines.data import dreamed_frames
    from vosbench_baselines.training import finetune_online

    crop = (min(config.crop[0], mask.shape[0]), min(config.crop[1], mask.shape[1]))
    scenes = list(zip(*dreamed_frames(image, mask, config.dreams, rng))) if config.dreams > 0 else [(image, mask)]

    def loss_of_step() -> torch.Tensor:
        drawn = [scenes[int(rng.integers(len(scenes)))] for _ in range(config.batch)]
        pairs = [augment_pair(im, m, rng, rotate=config.rotate, scales=config.scales, crop=crop) for im, m in drawn]
        images = to_tensor(np.stack([p[0] for p in pairs]), device)
        targets = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.float32))[:, None].to(device)
        extra = None
        if extra_of is not None:
            extra = torch.from_numpy(np.stack([extra_of(p[1], rng) for p in pairs]).astype(np.float32))[:, None]
            extra = extra.to(device)
        if extra is None:
            with torch.no_grad():   # frozen blocks: no gradient needed below stride 4
                x4 = net.prefix(images)
        else:
            x4 = net.prefix(images, extra)   # the extra stem weights learn through the frozen blocks
        logits, sides = net.suffix(x4, images.shape[-2:], sides=True)
        return segmentation_loss(logits, targets) + 0.5 * sum(segmentation_loss(s, targets) for s in sides)

    return finetune_online(net, config.steps, config.lr, loss_of_step, desc=desc)


def default_weights(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.pt"



def labels_from_logits(scores: torch.Tensor, ids: list[int], threshold: float = 0.5) -> np.ndarray:
    """(O, H, W) logits -> id map: the most confident object where its probability is above `threshold`."""
    best = scores.max(0)
    labels = torch.as_tensor(ids, dtype=torch.uint8, device=scores.device)[best.indices]
    limit = 0.0 if threshold == 0.5 else math.log(threshold / (1 - threshold))   # the threshold as a logit
    labels[best.values <= limit] = 0
    return labels.cpu().numpy().astype(np.uint8)


# ----------------------------------------------------------------------------------------
# Offline training
# ----------------------------------------------------------------------------------------


DEFAULT_TRAIN_OPTIONS = {"crop": 256, "scale": (0.8, 1.7), "rotation": 15.0}


class SingleFrameTask:
    """The losses of one training step of a single-frame network (the OSVOS parent, MaskTrack).

    Samples are frames of a dataset split under random zoom, flip, rotation and colour
    jitter (`vosbench_baselines.data.FrameSampler`). What a network takes besides the frame
    comes from its `training_extra` (MaskTrack: the ground truth deformed), its optimiser
    groups from its `param_groups`. The loss is the class-balanced
    cross-entropy plus soft IoU on the fused output, and half of it on each side output.

    options: crop (square side), scale (zoom range), rotation (degrees).
    """

    def __init__(self, method: str | type, dataset, batch_size: int = 4, learning_rate: float = 3e-4, seed: int = 0,
                 device: str = "cpu", pretrained: bool = True, options: dict[str, Any] | None = None):
        """method: a registered method name or class whose `network_class` is a SegNet."""
        from vosbench.methods.registry import get_method
        from vosbench_baselines.data import Augment, FrameSampler, TrainingFrames

        method_cls = get_method(method) if isinstance(method, str) else method
        options = {**DEFAULT_TRAIN_OPTIONS, **(options or {})}
        self.method, self.device, self.batch_size, self.options = method_cls.name, device, int(batch_size), options
        self.frames = TrainingFrames(dataset)
        crop = int(options["crop"])
        augment = Augment(crop=(crop, crop), scale=tuple(options["scale"]), rotation=float(options["rotation"]))
        self.sampler = FrameSampler(self.frames, augment=augment, seed=seed)
        torch.manual_seed(seed)
        self.net: SegNet = method_cls.network_class(pretrained=pretrained)
        self.net.to(device).train()
        self.optimizer = torch.optim.AdamW(self.net.param_groups(learning_rate), weight_decay=1e-4)
        self.deform = _Generator(np.random.default_rng([seed, 1]))

    def compute_losses(self, step: int = 0) -> dict[str, torch.Tensor]:
        images, masks = self.sampler.batch(self.batch_size)
        masks = (masks > 0).astype(np.uint8)
        x = to_tensor(images, self.device)
        target = torch.from_numpy(masks.astype(np.float32))[:, None].to(self.device)
        extras = [self.net.training_extra(m, self.deform.rng) for m in masks]
        if extras and extras[0] is not None:
            prior = np.stack(extras).astype(np.float32)
            x4 = self.net.prefix(x, torch.from_numpy(prior)[:, None].to(self.device))
        else:
            with torch.no_grad():   # the frozen blocks need no gradient
                x4 = self.net.prefix(x)
        logits, sides = self.net.suffix(x4, x.shape[-2:], sides=True)
        fused = segmentation_loss(logits, target)
        side = sum(segmentation_loss(s, target) for s in sides)
        return {"loss": fused + 0.5 * side, "fused": fused.detach(), "side": side.detach()}

    def step(self) -> dict[str, float]:
        """One update outside the shared loop (tests)."""
        terms = self.compute_losses()
        self.optimizer.zero_grad()
        terms["loss"].backward()
        self.optimizer.step()
        return {k: float(v.detach()) for k, v in terms.items()}

    def stateful(self) -> dict[str, Any]:
        return {"sampler": self.sampler, "deform": self.deform}


class _Generator:
    """A numpy Generator with state_dict / load_state_dict, for checkpoints."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def state_dict(self) -> dict:
        return {"state": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["state"]


def train_single_frame(method: str | type, config) -> Any:
    """Train `method`'s network with the shared loop (`vosbench_baselines.training.train_loop`).

    config: `vosbench_baselines.training.TrainConfig`; config.options may set crop, scale
    and rotation; ``decay_from`` (a step) keeps the learning rate (config.learning_rate; the
    mask stem 10x) constant until that step and then anneals it with a cosine to 5% at
    config.steps (default: constant throughout).
    """
    from vosbench.io.factory import open_dataset
    from vosbench_baselines.training import constant_then_cosine_lr, train_loop

    device = prepare_torch(config.device, config.threads)
    dataset = open_dataset(config.dataset, config.data, split=config.split, resolution=config.resolution)
    task = SingleFrameTask(method, dataset, batch_size=config.batch_size, learning_rate=config.learning_rate,
                           seed=config.seed, device=device, pretrained=bool(config.options.get("pretrained", True)),
                           options={k: v for k, v in config.options.items() if k not in ("pretrained", "decay_from")})
    decay_from = config.options.get("decay_from")
    decay_from = None if decay_from is None else int(decay_from)
    started = time.time()

    def export(step: int) -> Path:
        meta = {"method": task.method, "steps": step, "seed": config.seed, "data": Path(config.data).name,  # the folder name only: no machine paths in shipped files
                "split": config.split, "batch_size": config.batch_size, "learning_rate": config.learning_rate,
                "options": {k: list(v) if isinstance(v, tuple) else v for k, v in task.options.items()},
                "decay_from": decay_from,
                "wall_seconds_this_session": round(time.time() - started, 1)}
        return save_trained(task.net, Path(config.out) / "final.pt", meta)

    return train_loop(config=config, model=task.net, optimizer=task.optimizer, compute_losses=task.compute_losses,
                      stateful=task.stateful(), export=export,
                      lr_at=lambda step: constant_then_cosine_lr(step, config.steps, config.learning_rate, decay_from))
