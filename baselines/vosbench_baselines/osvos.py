"""OSVOS (Caelles et al., CVPR 2017) on the shared EfficientNet-Lite0 encoder.

The paper's idea, kept here:

1. A *parent network* learns offline, on the DAVIS train split, to segment the foreground
   object of a single frame (no temporal information). Like OSVOS's side outputs, the
   decoder predicts from several encoder depths (strides 16, 8 and 4) and every side
   output is supervised.
2. For each test video the parent is *fine-tuned online* on the first frame and its mask,
   under random flips, zooms and rotations, so that the network learns this object.
3. Every frame is then segmented independently.

What the CPU scale changes: the encoder's first blocks (stride <= 4) stay frozen, so
online fine-tuning runs them once without gradients; fine-tuning takes a few dozen steps
on crops instead of 10 000 iterations at full size; frames are segmented at a short side
of `short_side` pixels (the parent is trained on 240p frames zoomed 0.85x to 1.8x) and the
logits resized to the frame.

The trained weights file holds only what the encoder package does not (the decoder and
the encoder blocks that training changed), in float16.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Iterator

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vosbench.errors import InputError
from vosbench.methods.base import SemiSupervisedMethod, Video
from vosbench.methods.device import prepare_torch
from vosbench_baselines.single_frame import (FinetuneConfig, SegNet, default_weights, finetune_on_frame,
                                             labels_from_logits, load_trained, resize_short_side, to_tensor,
                                             train_single_frame)

log = logging.getLogger(__name__)


class OSVOS(SemiSupervisedMethod):
    """One-shot video object segmentation: parent network + online fine-tuning on frame 0.

    Options: weights (a file from `vosbench train`; default the packaged
    ``weights/osvos.pt``), finetune_steps, finetune_lr and finetune_dreams (of the online
    fine-tuning on frame 0; default `default_finetune`), short_side (frames are segmented at this
    short side; 360), seed (0), pretrained (False builds the encoder without the ImageNet
    file, for tests).

    The objects segmented are those of the first frame's mask (DAVIS); one network is
    fine-tuned per object and each pixel goes to the most confident object above 0.5.
    """

    name: ClassVar[str] = "osvos"
    # Chosen among 0/40/100/250 steps at rates 1e-3 and 3e-4 as the best J&F on six DAVIS 2016 train
    # videos held out from a parent trained on the other 24 (0.704; 100 steps 0.696, 40 steps 0.620),
    # within the 60 s per video budget of fine-tuning on the CPU. Crops from dreamed scenes (MaskTrack's
    # default) scored 0.672 there, so the frame alone.
    default_finetune: ClassVar[FinetuneConfig] = FinetuneConfig(steps=250, lr=1e-3)

    def __init__(self, device: str = "auto", weights: str | None = None, finetune_steps: int | None = None,
                 finetune_lr: float | None = None, short_side: int = 360, seed: int = 0, pretrained: bool = True,
                 finetune_dreams: int | None = None, **options: Any):
        super().__init__(device=device, weights=weights, finetune_steps=finetune_steps, finetune_lr=finetune_lr,
                         short_side=short_side, seed=seed, **options)
        self.weights = Path(weights) if weights else default_weights(self.name)
        if self.weights.is_file():
            # What changes the masks, so that a results folder made with other weights is not reused.
            from vosbench_baselines.training import weights_sha256

            self.options["weights_sha256"] = weights_sha256(self.weights)
        self.finetune = replace(self.default_finetune)
        if finetune_steps is not None:
            self.finetune.steps = int(finetune_steps)
        if finetune_lr is not None:
            self.finetune.lr = float(finetune_lr)
        if finetune_dreams is not None:
            if int(finetune_dreams) < 0:
                raise ValueError("finetune_dreams must be >= 0 (0: the first frame alone)")
            self.finetune.dreams = int(finetune_dreams)
        # The settings in force, not the arguments (None means "the default", which may change).
        self.options.update(finetune_steps=self.finetune.steps, finetune_lr=self.finetune.lr,
                            finetune_dreams=self.finetune.dreams)
        self.short_side = int(short_side) if short_side else None
        self.seed = int(seed)
        self.pretrained = bool(pretrained)
        self._parent: SegNet | None = None
        self.torch_device: str | None = None   # resolved when the parent network is built
        self.last_finetune_seconds: float | None = None

    # The network this method trains and fine-tunes (`SingleFrameTask` builds it too).
    network_class: ClassVar[type[SegNet]] = SegNet

    def build_network(self) -> SegNet:
        return self.network_class(pretrained=self.pretrained)

    def parent(self) -> SegNet:
        if self._parent is None:
            torch.manual_seed(self.seed)   # what no weights file sets is still reproducible
            net = self.build_network()
            if self.weights is not None and (self.weights.exists() or self.options.get("weights")):
                load_trained(net, self.weights)
            else:
                log.warning("%s: no trained weights at %s; the parent network is untrained", self.name, self.weights)
            self.torch_device = prepare_torch(self.device)
            self._parent = net.to(self.torch_device).eval()
        return self._parent

    def _object_masks(self, video: Video) -> tuple[np.ndarray, list[int]]:
        first = video.given_masks.get(0)
        if first is None:
            raise InputError(Path(video.name), "has no first-frame mask.", f"{self.name} needs the mask of frame 0.")
        ids = [int(i) for i in (video.object_ids or np.unique(first)) if int(i) != 0]
        return first, ids

    # (mask, rng) -> the extra input channel fed with each fine-tuning crop; None: RGB only.
    # MaskTrack defines it as a method.
    finetune_extra: ClassVar[Any] = None
    # Whether an object absent from frame 0 is still fine-tuned (on an empty target).
    finetune_empty_masks: ClassVar[bool] = False

    def finetuned_networks(self, video: Video, image: np.ndarray | None = None) -> list[tuple[int, SegNet]]:
        """One fine-tuned copy of the parent per object of frame 0 (the parent itself without fine-tuning).

        image: what the copies learn from in place of frame 0 (aligned with it, at the processing
        size): MaskTrack's flow stream learns from the flow's magnitude.
        """
        first, ids = self._object_masks(video)
        parent = self.parent()
        if self.finetune.steps <= 0:
            self.last_finetune_seconds = 0.0
            return [(object_id, parent) for object_id in ids]
        frame0 = resize_short_side(np.asarray(video.frames[0]), self.short_side) if image is None else image
        networks = []
        start = time.perf_counter()
        for object_id in ids:
            net = copy.deepcopy(parent)
            mask = cv2.resize((first == object_id).astype(np.uint8), frame0.shape[1::-1], interpolation=cv2.INTER_NEAREST)
            if mask.any() or self.finetune_empty_masks:
                rng = np.random.default_rng([self.seed, object_id])
                finetune_on_frame(net, frame0, mask, self.finetune, rng, self.torch_device, extra_of=self.finetune_extra,
                                  desc=f"{video.name} object {object_id}: fine-tuning")
            networks.append((object_id, net.eval()))
        self.last_finetune_seconds = time.perf_counter() - start
        log.info("%s: fine-tuned %d object(s) of %s in %.1f s", self.name, len(ids), video.name,
                 self.last_finetune_seconds)
        return networks

    @torch.no_grad()
    def segment(self, video: Video) -> Iterator[np.ndarray]:
        first, _ = self._object_masks(video)
        with torch.enable_grad():
            networks = self.finetuned_networks(video)
        h, w = video.size
        for t in range(len(video.frames)):
            if t == 0:
                yield first.astype(np.uint8)
                continue
            frame = resize_short_side(np.asarray(video.frames[t]), self.short_side)
            x = to_tensor(frame, self.torch_device)
            scores = torch.stack([net(x)[0, 0] for _, net in networks])
            scores = F.interpolate(scores[None], size=(h, w), mode="bilinear", align_corners=False)[0]
            yield labels_from_logits(scores, [i for i, _ in networks])

    @classmethod
    def train(cls, config) -> Any:
        """`vosbench train --method osvos`: train the parent network offline; writes <out>/final.pt."""
        return train_single_frame(cls, config)


