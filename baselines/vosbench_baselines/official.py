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
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vosbench.errors import InputError
from vosbench.methods.base import SemiSupervisedMethod, Video
from vosbench.methods.device import configure_threads, resolve_device

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
        return self.ResMM(s + F.interpolate(coarser, size=s.shape[-2:], mode="bilinear", align_corners=False))


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


class STMOfficialNet(nn.Module):
    """STM with the released checkpoint's module names."""

    def __init__(self):
        super().__init__()
        self.Encoder_M = Encoder_M()
        self.Encoder_Q = Encoder_Q()
        self.KV_M_r4 = _KeyValue()
        self.KV_Q_r4 = _KeyValue()
        self.Memory = _Memory()
        self.Decoder = _Decoder(256)

    def memorize(self, frame, object_probs):
        """Keys/values of one frame: frame (1,3,H,W) in [0,1]; object_probs (O,H,W) -> ((O,128,1,h,w), ...)."""
        n = object_probs.shape[0]
        total = object_probs.sum(0, keepdim=True)
        others = (total - object_probs).clamp(0, 1)
        r4, _, _ = self.Encoder_M(frame.expand(n, -1, -1, -1), object_probs, others)
        k, v = self.KV_M_r4(r4)
        return k.unsqueeze(2), v.unsqueeze(2)

    def segment(self, frame, keys, values):
        """Per-object foreground probability (O,H,W) of a frame given the memory."""
        n = keys.shape[0]
        r4, r3, r2 = self.Encoder_Q(frame)
        k4, v4 = self.KV_Q_r4(r4)
        m4 = self.Memory(keys, values, k4.expand(n, -1, -1, -1), v4.expand(n, -1, -1, -1))
        logits = self.Decoder(m4, r3.expand(n, -1, -1, -1), r2.expand(n, -1, -1, -1))
        return F.softmax(logits, dim=1)[:, 1]


def soft_aggregate(probs: torch.Tensor) -> torch.Tensor:
    """STM's soft aggregation: (O,H,W) independent probabilities -> (O+1,H,W) logits, background first."""
    bg = torch.prod(1 - probs, dim=0, keepdim=True)
    em = torch.cat([bg, probs], dim=0).clamp(1e-7, 1 - 1e-7)
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
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}   # saved from nn.DataParallel
    expected = net.state_dict()
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


def _pad16(t: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    h, w = t.shape[-2:]
    ph, pw = (-h) % 16, (-w) % 16
    return F.pad(t, [0, pw, 0, ph]), (h, w)


class STMOfficial(SemiSupervisedMethod):
    """STM with the authors' released ResNet-50 weights (``--weights STM_weights.pth``).

    Options: weights (path, required), memory_every (5, as the authors' DAVIS evaluation:
    frame 0, every 5th frame and the previous frame are in memory).
    """

    name: ClassVar[str] = "stm-official"

    def __init__(self, device: str = "auto", weights: str | None = None, memory_every: int = 5, **options: Any):
        super().__init__(device=device, weights=weights, memory_every=memory_every, **options)
        self.memory_every = int(memory_every)
        self._net: STMOfficialNet | None = None

    def network(self) -> STMOfficialNet:
        if self._net is None:
            net = STMOfficialNet()
            load_official_state(net, _require_weights(self.options, self.name))
            self._torch_device = resolve_device(self.device)
            configure_threads()
            self._net = net.to(self._torch_device).eval()
        return self._net

    @torch.no_grad()
    def segment(self, video: Video) -> Iterator[np.ndarray]:
        net = self.network()
        dev = self._torch_device
        ids = list(video.object_ids) or sorted(int(i) for i in np.unique(video.given_masks.get(0, 0)) if i)
        h, w = video.size
        keys = values = None
        previous: np.ndarray | None = None
        for t in range(len(video.frames)):
            frame = torch.from_numpy(np.ascontiguousarray(video.frames[t])).to(dev)
            frame, _ = _pad16(frame.permute(2, 0, 1).unsqueeze(0).float().div_(255))
            given = video.given_masks.get(t)
            if t > 0 and keys is not None:
                probs = net.segment(frame, keys, values)[:, :h, :w]
                labels = soft_aggregate(probs).argmax(0).cpu().numpy().astype(np.uint8)
                out = np.zeros((h, w), np.uint8)
                for k, object_id in enumerate(ids, start=1):
                    out[labels == k] = object_id
            else:
                out = np.zeros((h, w), np.uint8)
            if given is not None:
                out = np.where(given > 0, given, out).astype(np.uint8)
            yield out
            previous = out
            # The previous frame is always in memory; it stays when it is frame 0 or every `memory_every`.
            one_hot = torch.stack([torch.from_numpy((previous == i).astype(np.float32)) for i in ids]).to(dev)
            one_hot, _ = _pad16(one_hot)
            k_new, v_new = net.memorize(frame, one_hot)
            if keys is None:
                keys, values, kept_k, kept_v = k_new, v_new, k_new, v_new
                continue
            if t % self.memory_every == 0:
                kept_k, kept_v = torch.cat([kept_k, k_new], 2), torch.cat([kept_v, v_new], 2)
                keys, values = kept_k, kept_v
            else:
                keys, values = torch.cat([kept_k, k_new], 2), torch.cat([kept_v, v_new], 2)


def osvos_official_input(frame_rgb: np.ndarray) -> torch.Tensor:
    """The authors' input: BGR 0..255 minus the Caffe VGG means, (1,3,H,W) float32."""
    bgr = frame_rgb[..., ::-1].astype(np.float32) - np.asarray(OSVOS_BGR_MEAN, np.float32)
    return torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1))).unsqueeze(0)


class OSVOSOfficial(SemiSupervisedMethod):
    """OSVOS with the authors' released VGG-16 weights (``--weights parent_epoch-239.pth``).

    Options: weights (path, required), finetune_steps (online fine-tuning updates on the
    first frame; the authors use 2000 updates of 5 accumulated gradients, which takes hours
    per video on a CPU at 480p; 0 segments with the loaded network as is), seed.
    Each frame is segmented independently; foreground where the fused output's sigmoid > 0.5.
    """

    name: ClassVar[str] = "osvos-official"

    def __init__(self, device: str = "auto", weights: str | None = None, finetune_steps: int = 2000,
                 seed: int = 0, **options: Any):
        super().__init__(device=device, weights=weights, finetune_steps=finetune_steps, seed=seed, **options)
        self.finetune_steps = int(finetune_steps)
        self.seed = int(seed)
        self._state: dict[str, torch.Tensor] | None = None

    def _parent(self) -> OSVOSOfficialNet:
        net = OSVOSOfficialNet()
        if self._state is None:
            load_official_state(net, _require_weights(self.options, self.name))
            self._state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            net.load_state_dict(self._state, strict=True)
        return net

    def _finetune(self, net: OSVOSOfficialNet, frame: np.ndarray, mask: np.ndarray, dev: str) -> None:
        from vosbench_baselines.osvos import augment_pair, class_balanced_bce

        lr, wd, accumulate = 1e-8, 2e-4, 5   # the authors' online settings (SGD on summed loss)
        groups = [
            {"params": [p for n, p in net.stages.named_parameters() if "weight" in n], "weight_decay": wd},
            {"params": [p for n, p in net.stages.named_parameters() if "bias" in n], "lr": lr * 2},
            {"params": [p for n, p in net.side_prep.named_parameters() if "weight" in n], "weight_decay": wd},
            {"params": [p for n, p in net.side_prep.named_parameters() if "bias" in n], "lr": lr * 2},
            {"params": [net.fuse.weight], "lr": lr / 100, "weight_decay": wd},
            {"params": [net.fuse.bias], "lr": 2 * lr / 100},
        ]
        for p in list(net.upscale.parameters()) + list(net.upscale_.parameters()) + list(net.score_dsn.parameters()):
            p.requires_grad_(False)
        optimizer = torch.optim.SGD(groups, lr=lr, momentum=0.9)
        rng = np.random.default_rng(self.seed)
        net.train()
        for _ in range(self.finetune_steps):
            optimizer.zero_grad()
            for _ in range(accumulate):
                image, target = augment_pair(frame, mask, rng, rotate=30.0, scales=(0.75, 1.25))
                logits = net(osvos_official_input(image).to(dev))[-1]
                target_t = torch.from_numpy(target.astype(np.float32))[None, None].to(dev)
                (class_balanced_bce(logits, target_t, reduction_sum=True) / accumulate).backward()
            optimizer.step()
        net.eval()

    def segment(self, video: Video) -> Iterator[np.ndarray]:
        from vosbench_baselines.osvos import labels_from_logits

        dev = resolve_device(self.device)
        configure_threads()
        first = video.given_masks.get(0)
        if first is None:
            raise InputError(Path(video.name), "has no first-frame mask.", "OSVOS needs the mask of frame 0.")
        ids = [int(i) for i in (video.object_ids or np.unique(first)) if int(i) != 0]
        # One fine-tuned network per object, as OSVOS handles several objects.
        networks = []
        for object_id in ids:
            net = self._parent().to(dev)
            if self.finetune_steps > 0:
                self._finetune(net, np.asarray(video.frames[0]), (first == object_id).astype(np.uint8), dev)
            networks.append(net.eval())
        with torch.no_grad():
            for t in range(len(video.frames)):
                if t == 0:
                    yield first.astype(np.uint8)
                    continue
                x = osvos_official_input(np.asarray(video.frames[t])).to(dev)
                yield labels_from_logits(torch.stack([net(x)[-1][0, 0] for net in networks]), ids)
