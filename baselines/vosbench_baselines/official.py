"""Networks whose parameter names and shapes equal the authors' released checkpoints.

``stm-official`` loads the released Space-Time Memory Networks weights (Oh et al., ICCV 2019,
``STM_weights.pth``); ``osvos-official`` loads the released OSVOS-PyTorch parent or online
model (Caelles et al., CVPR 2017, ``parent_epoch-239.pth``). Both are loaded with
``--weights PATH`` and ``strict=True``: a file with one key too many, too few or of another
shape is refused with the list of differences, never half-loaded.

Where the key lists come from (re-checked against the authors' code, not copied from it):

* STM: ``model.py`` of github.com/seoungwugoh/STM. The model is the module ``STM`` with the
  children ``Encoder_M`` (``conv1_m``, ``conv1_o``, then torchvision ResNet-50's ``conv1``,
  ``bn1`` and ``layer1..layer3`` stored as ``res2``, ``res3``, ``res4``, plus the buffers
  ``mean`` and ``std``), ``Encoder_Q`` (the same without ``conv1_m``/``conv1_o``),
  ``KV_M_r4`` / ``KV_Q_r4`` (``Key`` 1024->128, ``Value`` 1024->512, 3x3), ``Memory`` (no
  parameters) and ``Decoder`` (``convFM``, ``ResMM``, ``RF3``, ``RF2`` made of ``convFS``,
  ``ResFS``, ``ResMM``, whose ResBlocks hold ``conv1``, ``conv2`` and, when the width
  changes, ``downsample``; then ``pred2``). ``eval_DAVIS.py`` wraps the model in
  ``nn.DataParallel`` before loading, so the released file's keys carry a ``module.``
  prefix; it is removed when every key has it.
* OSVOS: ``networks/vgg_osvos.py`` of github.com/kmaninis/OSVOS-PyTorch. ``stages`` (five
  ``nn.Sequential`` of VGG-16 convolutions, stages 1..4 starting with a max-pool so that
  their convolutions sit at indices 1, 3, 5), ``side_prep`` (3x3 convs to 16 channels),
  ``score_dsn`` (1x1 convs to 1 channel), ``upscale`` (16->16 transposed convs, kernel
  ``2**(1+i)``, stride ``2**i``, no bias), ``upscale_`` (1->1, the same) and ``fuse``
  (64->1, 1x1).

``official_key_spec`` writes these lists out (name -> shape) from the description above,
independently of the modules, so a test can build a state dict from it and load it.

What they compute is the authors' computation, checked against outputs recorded from the
authors' code at pinned commits (``tests/official_parity``: ``make_golden.py`` makes
``golden.npz``, the tests compare):

* STM, as ``eval_DAVIS.py``'s ``Run_video`` with ``model.py``: frames padded to a multiple of
  16 with the padding split between both sides; frame 0's mask as one-hot channels, later
  frames' memory being the softmax of the soft-aggregated logits (probabilities, not a hard
  mask) over K = 11 channels (the DAVIS loader's; unused channels add 1e-7 odds each); each
  object's "others" channel summed from the other objects' channels; frame 0, every 5th frame
  and the previous frame in memory.
* OSVOS, as ``train_online.py`` with ``vgg_osvos.py``, ``custom_transforms.py`` and
  ``osvos_layers.py``: the input (BGR minus the Caffe means), the side outputs, the online
  augmentation (flip, then rotation in [-30, 30] degrees and a scale uniform in [0.75, 1.25]
  about the centre, cubic interpolation of the mean-subtracted image, zero border), the loss
  (class-balanced cross-entropy summed over pixels, divided over 5 accumulated samples) and the
  optimiser's groups. The threshold is the authors' TensorFlow release's, sigmoid > 162/255.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, ClassVar, Iterator

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vosbench.errors import InputError
from vosbench.methods.base import SemiSupervisedMethod, Video
from vosbench.methods.device import prepare_torch
from vosbench_baselines.single_frame import class_balanced_bce, labels_from_logits

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------
# STM (ResNet-50 encoders)
# ----------------------------------------------------------------------------------------


class _Bottleneck(nn.Module):
    """torchvision's ResNet-50 bottleneck (stride on the 3x3 convolution), same attribute names."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False),
                                         nn.BatchNorm2d(planes * 4)) if downsample else None)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _resnet_layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [_Bottleneck(inplanes, planes, stride, downsample=True)]
    layers += [_Bottleneck(planes * 4, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class _ResNetTrunk(nn.Module):
    """conv1 .. layer3 of ResNet-50, exposed under STM's names (res2, res3, res4)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.res2 = _resnet_layer(64, 64, 3, 1)      # 1/4, 256
        self.res3 = _resnet_layer(256, 128, 4, 2)    # 1/8, 512
        self.res4 = _resnet_layer(512, 256, 6, 2)    # 1/16, 1024
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def _trunk(self, x):
        c1 = self.relu(self.bn1(x))
        r2 = self.res2(self.maxpool(c1))
        r3 = self.res3(r2)
        r4 = self.res4(r3)
        return r4, r3, r2


class Encoder_M(_ResNetTrunk):  # noqa: N801 - the authors' module name is part of the key list
    """Memory encoder: frame plus the object's mask and the other objects' masks."""

    def __init__(self):
        super().__init__()
        self.conv1_m = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
        self.conv1_o = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)

    def forward(self, frame, mask, others):
        f = (frame - self.mean) / self.std
        x = self.conv1(f) + self.conv1_m(mask.unsqueeze(1)) + self.conv1_o(others.unsqueeze(1))
        return self._trunk(x)


class Encoder_Q(_ResNetTrunk):  # noqa: N801
    """Query encoder: the frame alone."""

    def forward(self, frame):
        return self._trunk(self.conv1((frame - self.mean) / self.std))


class _ResBlock(nn.Module):
    def __init__(self, indim: int, outdim: int | None = None, stride: int = 1):
        super().__init__()
        outdim = outdim or indim
        self.downsample = (None if indim == outdim and stride == 1
                           else nn.Conv2d(indim, outdim, 3, padding=1, stride=stride))
        self.conv1 = nn.Conv2d(indim, outdim, 3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(outdim, outdim, 3, padding=1)

    def forward(self, x):
        r = self.conv2(F.relu(self.conv1(F.relu(x))))
        return (x if self.downsample is None else self.downsample(x)) + r


class _Refine(nn.Module):
    def __init__(self, inplanes: int, planes: int):
        super().__init__()
        self.convFS = nn.Conv2d(inplanes, planes, 3, padding=1)
        self.ResFS = _ResBlock(planes)
        self.ResMM = _ResBlock(planes)

    def forward(self, f, coarser):
        s = self.ResFS(self.convFS(f))
        return self.ResMM(s + F.interpolate(coarser, scale_factor=2, mode="bilinear", align_corners=False))


class _Decoder(nn.Module):
    def __init__(self, mdim: int = 256):
        super().__init__()
        self.convFM = nn.Conv2d(1024, mdim, 3, padding=1)
        self.ResMM = _ResBlock(mdim)
        self.RF3 = _Refine(512, mdim)
        self.RF2 = _Refine(256, mdim)
        self.pred2 = nn.Conv2d(mdim, 2, 3, padding=1)

    def forward(self, m4, r3, r2):
        m = self.RF2(r2, self.RF3(r3, self.ResMM(self.convFM(m4))))
        return F.interpolate(self.pred2(F.relu(m)), scale_factor=4, mode="bilinear", align_corners=False)


class _KeyValue(nn.Module):
    def __init__(self, indim: int = 1024, keydim: int = 128, valdim: int = 512):
        super().__init__()
        self.Key = nn.Conv2d(indim, keydim, 3, padding=1)
        self.Value = nn.Conv2d(indim, valdim, 3, padding=1)

    def forward(self, x):
        return self.Key(x), self.Value(x)


class _Memory(nn.Module):
    """Space-time memory read: softmax over memory locations of key similarity, scaled by sqrt(dim)."""

    def forward(self, mem_keys, mem_values, q_key, q_value):
        # mem_keys: (O, Dk, T, H, W); q_key: (O, Dk, H, W)
        o, dk, t, h, w = mem_keys.shape
        dv = mem_values.shape[1]
        affinity = torch.bmm(mem_keys.reshape(o, dk, t * h * w).transpose(1, 2),
                             q_key.reshape(o, dk, h * w)) / math.sqrt(dk)
        affinity = F.softmax(affinity, dim=1)
        read = torch.bmm(mem_values.reshape(o, dv, t * h * w), affinity).view(o, dv, h, w)
        return torch.cat([read, q_value], dim=1)


# The authors' DAVIS loader holds K = 11 channels (background and objects 1..10) whatever the
# video's object count: soft aggregation and the softmax run over all of them, the unused ones
# adding clamp(0) = 1e-7 odds each. vosbench uses max(11, objects + 1).
STM_CHANNELS = 11


def pad_divide_by(tensors: list[torch.Tensor], d: int = 16) -> tuple[list[torch.Tensor], tuple[int, int, int, int]]:
    """Zero-pad the last two dims up to a multiple of `d`, half on each side (the odd pixel on the
    right/bottom), as the authors' ``helpers.pad_divide_by``; returns the pad (left, right, top, bottom)."""
    h, w = tensors[0].shape[-2:]
    ph, pw = (-h) % d, (-w) % d
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    return [F.pad(t, pad) for t in tensors], pad


def unpad(t: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    left, right, top, bottom = pad
    h, w = t.shape[-2:]
    return t[..., top:h - bottom, left:w - right]


class STMOfficialNet(nn.Module):
    """STM with the released checkpoint's module names, computing as the authors' ``model.py``."""

    def __init__(self):
        super().__init__()
        self.Encoder_M = Encoder_M()
        self.Encoder_Q = Encoder_Q()
        self.KV_M_r4 = _KeyValue()
        self.KV_Q_r4 = _KeyValue()
        self.Memory = _Memory()
        self.Decoder = _Decoder(256)

    def memorize(self, frame: torch.Tensor, masks: torch.Tensor, num_objects: int):
        """Keys and values of one frame.

        frame: (1, 3, H, W) in [0, 1]; masks: (1, K, H, W) probabilities, background first, then
        objects 1..num_objects. Returns ((O, 128, 1, h, w), (O, 512, 1, h, w)) for the objects.
        Each object's "others" channel is the sum of the other objects' probabilities (those before
        it, plus those after it) clipped to [0, 1], and the frame is copied once per object.
        """
        (frame, masks), _ = pad_divide_by([frame, masks])
        frames, objects, others = [], [], []
        for o in range(1, num_objects + 1):
            frames.append(frame)
            objects.append(masks[:, o])
            others.append((torch.sum(masks[:, 1:o], dim=1) + torch.sum(masks[:, o + 1:num_objects + 1], dim=1))
                          .clamp(0, 1))
        r4, _, _ = self.Encoder_M(torch.cat(frames, dim=0), torch.cat(objects, dim=0), torch.cat(others, dim=0))
        k, v = self.KV_M_r4(r4)
        return k.unsqueeze(2), v.unsqueeze(2)

    def segment(self, frame: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                channels: int = STM_CHANNELS) -> torch.Tensor:
        """(1, K, H, W) soft-aggregated logits of a frame (1, 3, H, W) given the memory (O, D, T, h, w)."""
        n = keys.shape[0]
        [frame], pad = pad_divide_by([frame])
        r4, r3, r2 = self.Encoder_Q(frame)
        k4, v4 = self.KV_Q_r4(r4)
        m4 = self.Memory(keys, values, k4.expand(n, -1, -1, -1), v4.expand(n, -1, -1, -1))
        logits = self.Decoder(m4, r3.expand(n, -1, -1, -1), r2.expand(n, -1, -1, -1))
        probs = F.softmax(logits, dim=1)[:, 1]
        return unpad(soft_aggregate(probs, channels), pad)


def soft_aggregate(probs: torch.Tensor, channels: int = STM_CHANNELS) -> torch.Tensor:
    """STM's soft aggregation: (O, H, W) independent probabilities -> (1, K, H, W) logits.

    Channel 0 is the background (the product of the objects' 1 - p), channels 1..O the objects,
    the rest (up to `channels`) empty; every odds is clamped to [1e-7, 1 - 1e-7] before the log.
    """
    n, h, w = probs.shape
    em = torch.zeros(1, max(channels, n + 1), h, w, dtype=probs.dtype, device=probs.device)
    em[0, 0] = torch.prod(1 - probs, dim=0)
    em[0, 1:n + 1] = probs
    em = torch.clamp(em, 1e-7, 1 - 1e-7)
    return torch.log(em / (1 - em))


# ----------------------------------------------------------------------------------------
# OSVOS (VGG-16)
# ----------------------------------------------------------------------------------------

VGG_STAGES = [[64, 64], ["M", 128, 128], ["M", 256, 256, 256], ["M", 512, 512, 512], ["M", 512, 512, 512]]
VGG_STAGE_INPUTS = [3, 64, 128, 256, 512]
# Caffe VGG's BGR channel means, subtracted from 0..255 BGR frames by the authors' loader.
OSVOS_BGR_MEAN = (104.00699, 116.66877, 122.67892)


def _vgg_stage(cfg: list, in_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
        else:
            layers += [nn.Conv2d(in_channels, v, 3, padding=1), nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


def _bilinear_kernel(size: int) -> torch.Tensor:
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    return torch.from_numpy((1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)).float()


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Crop (or pad) the last two dims to (height, width) about the centre, as OSVOS aligns its side outputs."""
    dh, dw = x.shape[-2] - height, x.shape[-1] - width
    top, left = dh // 2, dw // 2
    return F.pad(x, [-left, -(dw - left), -top, -(dh - top)])


class OSVOSOfficialNet(nn.Module):
    """OSVOS's VGG-16 with side outputs, the released checkpoint's module names."""

    def __init__(self):
        super().__init__()
        self.stages = nn.ModuleList()
        self.side_prep = nn.ModuleList()
        self.score_dsn = nn.ModuleList()
        self.upscale = nn.ModuleList()
        self.upscale_ = nn.ModuleList()
        for i, cfg in enumerate(VGG_STAGES):
            self.stages.append(_vgg_stage(cfg, VGG_STAGE_INPUTS[i]))
            if i > 0:
                self.side_prep.append(nn.Conv2d(cfg[-1], 16, 3, padding=1))
                self.score_dsn.append(nn.Conv2d(16, 1, 1))
                self.upscale_.append(nn.ConvTranspose2d(1, 1, 2 ** (1 + i), stride=2 ** i, bias=False))
                self.upscale.append(nn.ConvTranspose2d(16, 16, 2 ** (1 + i), stride=2 ** i, bias=False))
        self.fuse = nn.Conv2d(64, 1, 1)
        for module in self.modules():
            if isinstance(module, nn.ConvTranspose2d):
                # Bilinear upsampling filters, as the authors initialise (and never train) them.
                with torch.no_grad():
                    module.weight.zero_()
                    kernel = _bilinear_kernel(module.weight.shape[-1])
                    for c in range(module.weight.shape[0]):
                        module.weight[c, c] = kernel

    def forward(self, x):
        """Logits of the side outputs and, last, of the fused output, each at the input size."""
        h, w = x.shape[-2:]
        x = self.stages[0](x)
        sides, side_scores = [], []
        for i in range(1, len(self.stages)):
            x = self.stages[i](x)
            prep = self.side_prep[i - 1](x)
            sides.append(center_crop(self.upscale[i - 1](prep), h, w))
            side_scores.append(center_crop(self.upscale_[i - 1](self.score_dsn[i - 1](prep)), h, w))
        side_scores.append(self.fuse(torch.cat(sides, dim=1)))
        return side_scores


# ----------------------------------------------------------------------------------------
# The documented key lists
# ----------------------------------------------------------------------------------------


def _bn(prefix: str, c: int) -> dict[str, tuple]:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def _resnet50_spec(prefix: str) -> dict[str, tuple]:
    spec: dict[str, tuple] = {f"{prefix}.conv1.weight": (64, 3, 7, 7), **_bn(f"{prefix}.bn1", 64)}
    inplanes = 64
    for name, planes, blocks in (("res2", 64, 3), ("res3", 128, 4), ("res4", 256, 6)):
        for b in range(blocks):
            p = f"{prefix}.{name}.{b}"
            spec[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            spec.update(_bn(f"{p}.bn1", planes))
            spec[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            spec.update(_bn(f"{p}.bn2", planes))
            spec[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            spec.update(_bn(f"{p}.bn3", planes * 4))
            if b == 0:
                spec[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                spec.update(_bn(f"{p}.downsample.1", planes * 4))
            inplanes = planes * 4
    spec[f"{prefix}.mean"] = (1, 3, 1, 1)
    spec[f"{prefix}.std"] = (1, 3, 1, 1)
    return spec


def _conv(prefix: str, cout: int, cin: int, k: int, bias: bool = True) -> dict[str, tuple]:
    spec: dict[str, tuple] = {f"{prefix}.weight": (cout, cin, k, k)}
    if bias:
        spec[f"{prefix}.bias"] = (cout,)
    return spec


def _resblock_spec(prefix: str, dim: int) -> dict[str, tuple]:
    return {**_conv(f"{prefix}.conv1", dim, dim, 3), **_conv(f"{prefix}.conv2", dim, dim, 3)}


def stm_key_spec() -> dict[str, tuple]:
    """Every key of the released STM checkpoint (without ``module.``) and its shape."""
    spec: dict[str, tuple] = {}
    spec.update(_conv("Encoder_M.conv1_m", 64, 1, 7, bias=False))
    spec.update(_conv("Encoder_M.conv1_o", 64, 1, 7, bias=False))
    spec.update(_resnet50_spec("Encoder_M"))
    spec.update(_resnet50_spec("Encoder_Q"))
    for kv in ("KV_M_r4", "KV_Q_r4"):
        spec.update(_conv(f"{kv}.Key", 128, 1024, 3))
        spec.update(_conv(f"{kv}.Value", 512, 1024, 3))
    spec.update(_conv("Decoder.convFM", 256, 1024, 3))
    spec.update(_resblock_spec("Decoder.ResMM", 256))
    for rf, cin in (("RF3", 512), ("RF2", 256)):
        spec.update(_conv(f"Decoder.{rf}.convFS", 256, cin, 3))
        spec.update(_resblock_spec(f"Decoder.{rf}.ResFS", 256))
        spec.update(_resblock_spec(f"Decoder.{rf}.ResMM", 256))
    spec.update(_conv("Decoder.pred2", 2, 256, 3))
    return spec


def osvos_key_spec() -> dict[str, tuple]:
    """Every key of the released OSVOS-PyTorch checkpoint and its shape."""
    spec: dict[str, tuple] = {}
    for i, cfg in enumerate(VGG_STAGES):
        cin, index = VGG_STAGE_INPUTS[i], 0
        for v in cfg:
            if v == "M":
                index += 1
                continue
            spec.update(_conv(f"stages.{i}.{index}", v, cin, 3))
            cin, index = v, index + 2   # conv then ReLU
    for i in range(1, len(VGG_STAGES)):
        spec.update(_conv(f"side_prep.{i - 1}", 16, VGG_STAGES[i][-1], 3))
    for i in range(1, len(VGG_STAGES)):
        spec.update(_conv(f"score_dsn.{i - 1}", 1, 16, 1))
    for i in range(1, len(VGG_STAGES)):
        spec[f"upscale.{i - 1}.weight"] = (16, 16, 2 ** (1 + i), 2 ** (1 + i))
    for i in range(1, len(VGG_STAGES)):
        spec[f"upscale_.{i - 1}.weight"] = (1, 1, 2 ** (1 + i), 2 ** (1 + i))
    spec.update(_conv("fuse", 1, 64, 1))
    return spec


def official_key_spec(kind: str) -> dict[str, tuple]:
    return {"stm": stm_key_spec, "osvos": osvos_key_spec}[kind]()


def load_official_state(net: nn.Module, path: str | Path) -> None:
    """Load a released checkpoint into `net` with strict=True; InputError lists what differs."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "weights file does not exist.", "Pass --weights with the path of the released checkpoint.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise InputError(path, f"cannot be read as a PyTorch checkpoint ({exc}).",
                         "Pass the authors' released .pth file.") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(path, "holds no state dict.", "Pass the authors' released .pth file.")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise InputError(path, "holds something other than a state dict of tensors.",
                         "Pass the authors' released .pth file.")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}   # saved from nn.DataParallel
    expected = net.state_dict()
    # BatchNorm's num_batches_tracked appeared in PyTorch 0.4.1; files saved before lack it. It
    # counts training batches and changes nothing in evaluation: absent, it is filled with 0.
    absent_counters = [k for k in expected if k.endswith(".num_batches_tracked") and k not in state]
    if absent_counters:
        state = dict(state)
        state.update({k: torch.zeros_like(expected[k]) for k in absent_counters})
        log.info("%s: no num_batches_tracked for %d BatchNorm layers (saved before PyTorch 0.4.1); set to 0",
                 path, len(absent_counters))
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {', '.join(missing[:5])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {', '.join(unexpected[:5])})")
        if wrong:
            parts.append("wrong shape: " + ", ".join(
                f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in wrong[:5]))
        raise InputError(path, f"does not match {type(net).__name__}: " + "; ".join(parts) + ".",
                         "Pass the authors' released checkpoint for this method.")
    net.load_state_dict(state, strict=True)


# ----------------------------------------------------------------------------------------
# The methods
# ----------------------------------------------------------------------------------------


def _require_weights(options: dict[str, Any], name: str) -> Path:
    weights = options.get("weights")
    if not weights:
        raise InputError(Path("--weights"), f"{name} has no bundled weights.",
                         f"Download the authors' released checkpoint and pass --weights PATH to {name}.")
    return Path(weights)


class STMOfficial(SemiSupervisedMethod):
    """STM with the authors' released ResNet-50 weights (``--weights STM_weights.pth``).

    Inference as the authors' ``eval_DAVIS.py`` (``Run_video``): frame 0's mask as one-hot
    channels; each later frame is segmented from the memory and its softmax over the K channels
    (soft probabilities, not a hard mask) is memorised for the next frames; frame 0, every
    `memory_every`-th frame and the previous frame are in memory. A mask given on a later frame
    (objects that enter, as in YouTube-VOS; the authors' DAVIS script has none) replaces the
    probabilities where it marks an object.

    Options: weights (path, required), memory_every (5, as the authors' DAVIS evaluation).
    """

    name: ClassVar[str] = "stm-official"

    def __init__(self, device: str = "auto", weights: str | None = None, memory_every: int = 5, **options: Any):
        super().__init__(device=device, weights=weights, memory_every=memory_every, **options)
        self.memory_every = int(memory_every)
        if self.memory_every < 1:
            raise ValueError("memory_every must be >= 1")
        self._net: STMOfficialNet | None = None
        self.torch_device: str | None = None   # resolved when the network is built

    def network(self) -> STMOfficialNet:
        if self._net is None:
            net = STMOfficialNet()
            load_official_state(net, _require_weights(self.options, self.name))
            self.torch_device = prepare_torch(self.device)
            self._net = net.to(self.torch_device).eval()
        return self._net

    @torch.no_grad()
    def segment(self, video: Video) -> Iterator[np.ndarray]:
        net = self.network()
        dev = self.torch_device
        first = video.given_masks.get(0)
        if first is None:
            raise InputError(Path(video.name), "has no first-frame mask.", f"{self.name} needs the mask of frame 0.")
        ids = [int(i) for i in (video.object_ids or np.unique(first)) if int(i) != 0]
        channels = max(STM_CHANNELS, len(ids) + 1)
        label_of_channel = np.array([0, *ids] + [0] * (channels - len(ids) - 1), np.uint8)

        def frame_tensor(t: int) -> torch.Tensor:
            # As the authors' loader: np.array(image) / 255. in float64, then float32.
            return torch.from_numpy(np.ascontiguousarray(np.asarray(video.frames[t]).transpose(2, 0, 1)) / 255.)\
                .float()[None].to(dev)

        def one_hot(mask: np.ndarray) -> torch.Tensor:
            planes = np.zeros((1, channels) + mask.shape, np.float32)
            planes[0, 0] = ~np.isin(mask, ids)
            for c, object_id in enumerate(ids, start=1):
                planes[0, c] = mask == object_id
            return torch.from_numpy(planes).to(dev)

        yield first.astype(np.uint8)
        probs = one_hot(first)                        # the authors' Es[:, :, 0] = Ms[:, :, 0]
        previous = frame_tensor(0)
        keys = values = None
        for t in range(1, len(video.frames)):
            prev_key, prev_value = net.memorize(previous, probs, len(ids))
            if keys is None:                          # t - 1 == 0: the previous frame alone
                this_keys, this_values = prev_key, prev_value
            else:
                this_keys, this_values = torch.cat([keys, prev_key], dim=2), torch.cat([values, prev_value], dim=2)
            current = frame_tensor(t)
            probs = F.softmax(net.segment(current, this_keys, this_values, channels), dim=1)
            out = label_of_channel[probs[0].argmax(0).cpu().numpy()]
            given = video.given_masks.get(t)
            if given is not None and given.any():
                marked = torch.from_numpy(given > 0).to(dev)
                probs = torch.where(marked, one_hot(given), probs)
                out = np.where(given > 0, given, out).astype(np.uint8)
            yield out
            if (t - 1) % self.memory_every == 0:      # frames 0, k, 2k, ... stay in memory
                keys, values = this_keys, this_values
            previous = current


def osvos_official_input(frame_rgb: np.ndarray) -> torch.Tensor:
    """The authors' input: BGR 0..255 minus the Caffe VGG means, (1,3,H,W) float32."""
    return torch.from_numpy(np.ascontiguousarray(osvos_mean_subtracted(frame_rgb).transpose(2, 0, 1))).unsqueeze(0)


def osvos_mean_subtracted(frame_rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32: the frame as the authors' loader reads it (cv2.imread's BGR) minus the means."""
    return frame_rgb[..., ::-1].astype(np.float32) - np.asarray(OSVOS_BGR_MEAN, np.float32)


# The authors' online fine-tuning (OSVOS-PyTorch train_online.py): 2000 updates, each of the
# gradients of nAveGrad = 5 augmented copies of frame 0, SGD with momentum 0.9 at lr 1e-8.
OSVOS_ONLINE = {"lr": 1e-8, "weight_decay": 2e-4, "momentum": 0.9, "accumulate": 5, "steps": 2000}
# The sigmoid threshold of the authors' released TensorFlow code (OSVOS-TensorFlow osvos.py:
# ``res > 162.0/255.0``). The PyTorch code saves the soft sigmoid map, rescaled to 0..255 by
# scipy.misc.imsave, with no threshold.
OSVOS_THRESHOLD = 162.0 / 255.0


def osvos_optimizer(net: OSVOSOfficialNet, lr: float = OSVOS_ONLINE["lr"],
                    weight_decay: float = OSVOS_ONLINE["weight_decay"]) -> torch.optim.SGD:
    """The authors' online optimiser: weights with weight decay, biases at twice the rate, the fusion
    layer at 1/100, the bilinear upsampling layers at rate 0 and score_dsn (unused by the fused
    output) left out."""
    stages, side_prep = list(net.stages.named_parameters()), list(net.side_prep.named_parameters())
    groups = [
        {"params": [p for n, p in stages if "weight" in n], "weight_decay": weight_decay},
        {"params": [p for n, p in stages if "bias" in n], "lr": lr * 2},
        {"params": [p for n, p in side_prep if "weight" in n], "weight_decay": weight_decay},
        {"params": [p for n, p in side_prep if "bias" in n], "lr": lr * 2},
        {"params": [p for n, p in net.upscale.named_parameters() if "weight" in n], "lr": 0},
        {"params": [p for n, p in net.upscale_.named_parameters() if "weight" in n], "lr": 0},
        {"params": [net.fuse.weight], "lr": lr / 100, "weight_decay": weight_decay},
        {"params": [net.fuse.bias], "lr": 2 * lr / 100},
    ]
    return torch.optim.SGD(groups, lr=lr, momentum=OSVOS_ONLINE["momentum"])


def osvos_draw(rng: np.random.Generator) -> tuple[bool, float, float]:
    """One draw of the authors' online augmentation: a horizontal flip with chance 1/2, an angle
    uniform in [-30, 30] degrees and a scale uniform (not log-uniform) in [0.75, 1.25]."""
    flip = bool(rng.random() < 0.5)
    angle = 60.0 * rng.random() - 30.0
    scale = 0.5 * rng.random() - 0.25 + 1.0
    return flip, angle, scale


def osvos_augment(image: np.ndarray, gt: np.ndarray, flip: bool, angle: float,
                  scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The authors' RandomHorizontalFlip then ScaleNRotate (custom_transforms.py).

    image: (H, W, 3) float32 mean-subtracted BGR (`osvos_mean_subtracted`); gt: (H, W) float32 0/1.
    About the frame's centre (w/2, h/2); the image by cubic interpolation, the gt by nearest
    neighbour; outside the frame 0 (the mean colour, for the image).
    """
    if flip:
        image, gt = cv2.flip(image, flipCode=1), cv2.flip(gt, flipCode=1)
    h, w = gt.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    # The authors pick the interpolation per array: nearest where it holds only 0 and 1.
    flag = cv2.INTER_NEAREST if ((image == 0) | (image == 1)).all() else cv2.INTER_CUBIC
    image = cv2.warpAffine(image, matrix, (w, h), flags=flag)
    flag = cv2.INTER_NEAREST if ((gt == 0) | (gt == 1)).all() else cv2.INTER_CUBIC
    gt = cv2.warpAffine(gt, matrix, (w, h), flags=flag)
    return image, gt


def osvos_step(net: OSVOSOfficialNet, optimizer: torch.optim.Optimizer,
               samples: list[tuple[np.ndarray, np.ndarray]], device: str | torch.device) -> list[float]:
    """One online update: each (image, gt) sample's class-balanced loss on the fused output, summed
    over pixels (size_average=False), divided by the number of samples, its gradients accumulated,
    then one optimiser step. Returns each sample's loss before the division."""
    losses = []
    for image, gt in samples:
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device)
        target = torch.from_numpy(np.ascontiguousarray(gt, dtype=np.float32))[None, None].to(device)
        loss = class_balanced_bce(net(x)[-1], target, reduction_sum=True)
        losses.append(float(loss.detach()))
        (loss / len(samples)).backward()
    optimizer.step()
    optimizer.zero_grad()
    return losses


class OSVOSOfficial(SemiSupervisedMethod):
    """OSVOS with the authors' released VGG-16 weights (``--weights parent_epoch-239.pth``).

    Options: weights (path, required); finetune_steps (online updates on frame 0, each of 5
    augmented copies, as the authors' ``train_online.py``: 2000, hours per video on a CPU at 480p;
    0 segments with the parent as is); threshold (the sigmoid probability above which a pixel is
    foreground; default 162/255, the authors' released TensorFlow code; the PyTorch code saves
    soft maps); seed. Each frame is segmented independently, each object by its own fine-tuned
    copy; a pixel goes to the most confident object above the threshold.

    Neither checkpoint reproduces the paper's 0.798 J on DAVIS 2016 val: that came from the Caffe
    model with boundary snapping, which the PyTorch port lacks (see the model card).
    """

    name: ClassVar[str] = "osvos-official"

    def __init__(self, device: str = "auto", weights: str | None = None, finetune_steps: int = OSVOS_ONLINE["steps"],
                 seed: int = 0, threshold: float = OSVOS_THRESHOLD, **options: Any):
        super().__init__(device=device, weights=weights, finetune_steps=finetune_steps, seed=seed,
                         threshold=threshold, **options)
        self.finetune_steps = int(finetune_steps)
        self.seed = int(seed)
        self.threshold = float(threshold)
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be a probability strictly between 0 and 1")
        self._state: dict[str, torch.Tensor] | None = None
        self.torch_device: str | None = None   # resolved when the first network is built

    def _parent(self) -> OSVOSOfficialNet:
        net = OSVOSOfficialNet()
        if self._state is None:
            load_official_state(net, _require_weights(self.options, self.name))
            self._state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            net.load_state_dict(self._state, strict=True)
        return net

    def _finetune(self, net: OSVOSOfficialNet, frame: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
        image, gt = osvos_mean_subtracted(frame), (mask > 0).astype(np.float32)
        optimizer = osvos_optimizer(net)
        net.train()
        for _ in range(self.finetune_steps):
            samples = [osvos_augment(image, gt, *osvos_draw(rng)) for _ in range(OSVOS_ONLINE["accumulate"])]
            osvos_step(net, optimizer, samples, self.torch_device)
        net.eval()

    def segment(self, video: Video) -> Iterator[np.ndarray]:
        first = video.given_masks.get(0)
        if first is None:
            raise InputError(Path(video.name), "has no first-frame mask.", "OSVOS needs the mask of frame 0.")
        self.torch_device = prepare_torch(self.device)
        dev = self.torch_device
        ids = [int(i) for i in (video.object_ids or np.unique(first)) if int(i) != 0]
        # One fine-tuned network per object, as OSVOS handles several objects.
        networks = []
        for object_id in ids:
            net = self._parent().to(dev)
            if self.finetune_steps > 0:
                rng = np.random.default_rng([self.seed, object_id])
                self._finetune(net, np.asarray(video.frames[0]), (first == object_id).astype(np.uint8), rng)
            networks.append(net.eval())
        with torch.no_grad():
            for t in range(len(video.frames)):
                if t == 0:
                    yield first.astype(np.uint8)
                    continue
                x = osvos_official_input(np.asarray(video.frames[t])).to(dev)
                yield labels_from_logits(torch.stack([net(x)[-1][0, 0] for net in networks]), ids,
                                         threshold=self.threshold)
