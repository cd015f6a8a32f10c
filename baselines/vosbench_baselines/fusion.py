"""The learned fusion of ``s2m-stm`` (``fusion="learned"``): a simplified version of MiVOS's
difference-aware fusion.

When a new interaction at frame t propagates towards an earlier (or later) interacted frame `other`,
at a frame i between them the method holds two object probabilities: `old` (what the earlier
interactions left there) and `new` (the propagation from t). The linear rule mixes them as
``w * new + (1 - w) * old``, ``w = |i - other| / |t - other|``. `FusionNet` starts from that mix and
learns a correction of its logits from, per object: `old`, `new`, their difference, three constant
maps (w and both distances) and the frame's STM encoder features at stride 8 (already computed by
the method). Its output head starts at zero, so an untrained network gives the linear rule (up to
soft aggregation). The objects are merged by STM's soft aggregation, as propagation does.

Training data (`s2m.build_fusion_data`, cached once per recipe, seeded): for a DAVIS train sequence, two frames
a and t; STM propagation (the method's own `_propagate`, memory of the interacted frames) from a
with a possibly degraded mask (`simulate_error`) gives `old` on the frames between; the propagation
from t (memory {a, t}, a possibly lightly degraded ground truth at t) gives `new`; the target is the
ground truth.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vosbench_baselines.encoder import CHANNELS

# Distances are given to the network divided by this many frames, clipped at 1.
DISTANCE_SCALE = 30.0


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=dilation * (k // 2), dilation=dilation)


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-4, 1 - 1e-4)
    return torch.log(p / (1 - p))


class FusionNet(nn.Module):
    """(old, new (B, 1, H, W) probabilities, w, distance to t, distance to the other frame (B,),
    frame features at stride 8 (B, 40, h8, w8)) -> fused logits (B, 1, H, W).

    Two stride-2 convolutions bring the six maps (old, new, |new - old|, w, both distances) to
    stride 4, where they meet the frame's features (1x1 projection, upsampled from stride 8); two
    residual blocks (the second dilated) and a zero-initialised head give a correction of the
    logits of the linear mix, upsampled bilinearly to the input size.
    """

    def __init__(self, width: int = 32):
        super().__init__()
        self.down2 = _conv(6, 16, 3, 2)
        self.down4 = _conv(16, width, 3, 2)
        self.feat = _conv(CHANNELS[8], width, 1)
        self.block1a, self.block1b = _conv(width, width), _conv(width, width)
        self.block2a, self.block2b = _conv(width, width, dilation=2), _conv(width, width, dilation=2)
        self.head = _conv(width, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, old: torch.Tensor, new: torch.Tensor, w: torch.Tensor, to_t: torch.Tensor,
                to_other: torch.Tensor, feats8: torch.Tensor) -> torch.Tensor:
        b, _, height, width = old.shape

        def plane(v: torch.Tensor) -> torch.Tensor:
            return v.to(old.dtype).view(-1, 1, 1, 1).expand(b, 1, height, width)

        linear = plane(w) * new + (1 - plane(w)) * old
        x = torch.cat([old, new, (new - old).abs(), plane(w),
                       plane((to_t / DISTANCE_SCALE).clamp(max=1)), plane((to_other / DISTANCE_SCALE).clamp(max=1))], 1)
        x = F.relu(self.down2(x))
        x = F.relu(self.down4(x))
        f = self.feat(feats8)
        x = x + F.interpolate(f, size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = x + self.block1b(F.relu(self.block1a(F.relu(x))))
        x = x + self.block2b(F.relu(self.block2a(F.relu(x))))
        delta = F.interpolate(self.head(F.relu(x)), size=(height, width), mode="bilinear", align_corners=False)
        return _logit(linear) + delta


def fuse(net: FusionNet, old: torch.Tensor, new: torch.Tensor, w: float, to_t: int, to_other: int,
         feats8: torch.Tensor) -> torch.Tensor:
    """Object probabilities (K, h, w) after fusing `old` and `new` (K, h, w) of one frame."""
    from vosbench_baselines.stm import aggregate

    k = old.shape[0]
    if k == 0:
        return new
    scalar = lambda v: torch.full((k,), float(v), device=old.device)   # noqa: E731
    logits = net(old[:, None], new[:, None], scalar(w), scalar(to_t), scalar(to_other),
                 feats8.expand(k, -1, -1, -1))[:, 0]
    return torch.softmax(aggregate(logits[None]), dim=1)[0, 1:]


def fusion_losses(logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cross-entropy and soft IoU of the fused probability after soft aggregation (one object)."""
    from vosbench_baselines.stm import aggregate

    prob = torch.softmax(aggregate(logits), dim=1)[:, 1:].clamp(1e-6, 1 - 1e-6)
    bce = F.binary_cross_entropy(prob, target)
    inter = (prob * target).sum((1, 2, 3))
    union = (prob + target - prob * target).sum((1, 2, 3))
    iou = (1 - (inter + 1) / (union + 1)).mean()
    return {"loss": bce + iou, "bce": bce, "iou": iou}


def load_fusion(path: Path, net: FusionNet | None = None) -> FusionNet:
    """`net` (a new FusionNet when None) with the weights exported by
    `vosbench train --method s2m-stm --option part='"fusion"'`."""
    from vosbench_baselines.training import load_exported_into

    return load_exported_into(
        FusionNet() if net is None else net, path, "fusion",
        "Reinstall vosbench (the weights ship in vosbench_baselines/weights/), pass --option fusion_weights=PATH "
        "with the final.pt of `vosbench train --method s2m-stm --option part='\"fusion\"'`, or use --option "
        "fusion='\"linear\"'.", "vosbench train --method s2m-stm --option part='\"fusion\"'")


# -- training ----------------------------------------------------------------------------------
class FusionSampler:
    """Batches of the cached fusion samples: a random sample, a random crop (multiples of 8, so the
    stride-8 features crop with it) and a random horizontal flip. Seeded; resumable."""

    def __init__(self, data: Mapping[str, np.ndarray], crop: tuple[int, int], seed: int = 0):
        self.data = data
        self.crop = crop
        self.rng = np.random.default_rng([seed, 29])

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]

    def batch(self, size: int) -> dict[str, torch.Tensor]:
        d = self.data
        height, width = d["old"].shape[1:]
        ch, cw = min(self.crop[0], height // 8 * 8), min(self.crop[1], width // 8 * 8)
        rows: dict[str, list] = {k: [] for k in ("old", "new", "target", "feats8", "w", "to_t", "to_other")}
        for _ in range(size):
            n = int(self.rng.integers(len(d["old"])))
            y = 8 * int(self.rng.integers(0, (height - ch) // 8 + 1))
            x = 8 * int(self.rng.integers(0, (width - cw) // 8 + 1))
            flip = bool(self.rng.random() < 0.5)
            crop = lambda a: a[..., y:y + ch, x:x + cw]        # noqa: E731
            f8 = d["feats8"][n][:, y // 8:(y + ch) // 8, x // 8:(x + cw) // 8]
            items = {"old": crop(d["old"][n]).astype(np.float32) / 255, "new": crop(d["new"][n]).astype(np.float32) / 255,
                     "target": crop(d["target"][n]).astype(np.float32), "feats8": f8.astype(np.float32)}
            if flip:
                items = {k: v[..., ::-1] for k, v in items.items()}
            for k, v in items.items():
                rows[k].append(np.ascontiguousarray(v))
            for k in ("w", "to_t", "to_other"):
                rows[k].append(float(d[k][n]))
        out = {k: torch.from_numpy(np.stack(v)) for k, v in rows.items() if k not in ("w", "to_t", "to_other")}
        for k in ("old", "new", "target"):
            out[k] = out[k][:, None]
        out.update({k: torch.tensor(rows[k], dtype=torch.float32) for k in ("w", "to_t", "to_other")})
        return out
