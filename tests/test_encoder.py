"""The shared EfficientNet-Lite0 encoder: strict loading of the packaged ImageNet weights,
TF "SAME" padding, and outputs checked against an independent functional computation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vosbench_baselines.encoder import BLOCKS, CHANNELS, EfficientNetLite0, pretrained_weights_path


@pytest.fixture(scope="module")
def encoder() -> EfficientNetLite0:
    return EfficientNetLite0(pretrained=True).eval()


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)


def test_weights_come_from_the_installed_package_and_load_strictly(state):
    path = pretrained_weights_path()
    assert path.is_file() and path.suffix == ".pth"
    model = EfficientNetLite0(pretrained=False)
    missing, unexpected = model.load_state_dict(state, strict=True)
    assert not missing and not unexpected
    assert set(model.state_dict()) == set(state)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    # Written from the TensorFlow definition of "SAME", independently of the module.
    out = []
    for size in x.shape[-2:]:
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        out.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = out
    return F.pad(x, [left, right, top, bottom])


def _bn(x: torch.Tensor, state: dict, prefix: str) -> torch.Tensor:
    return F.batch_norm(x, state[prefix + ".running_mean"], state[prefix + ".running_var"],
                        state[prefix + ".weight"], state[prefix + ".bias"], False, 0.0, 1e-3)


def _reference_features(images: np.ndarray, state: dict) -> dict[int, torch.Tensor]:
    """EfficientNet-Lite0 computed with plain functional ops straight from the state dict."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    x = (x - 0.5) / 0.5
    x = F.conv2d(_same_pad(x, 3, 2), state["_conv_stem.weight"], stride=2)
    x = F.relu6(_bn(x, state, "_bn0"))
    stride, feats = 2, {}
    for i, spec in enumerate(BLOCKS):
        p = f"_blocks.{i}."
        y = x
        if p + "_expand_conv.weight" in state:
            y = F.relu6(_bn(F.conv2d(y, state[p + "_expand_conv.weight"]), state, p + "_bn0"))
        w = state[p + "_depthwise_conv.weight"]
        y = F.conv2d(_same_pad(y, w.shape[-1], spec.stride), w, stride=spec.stride, groups=w.shape[0])
        y = F.relu6(_bn(y, state, p + "_bn1"))
        y = _bn(F.conv2d(y, state[p + "_project_conv.weight"]), state, p + "_bn2")
        x = y + x if y.shape == x.shape and spec.stride == 1 else y
        stride *= spec.stride
        feats[stride] = x
    return feats


@pytest.mark.parametrize("size", [(64, 96), (45, 77)])
def test_features_equal_a_functional_computation_from_the_weights(encoder, state, size):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, *size, 3), dtype=np.uint8)
    with torch.no_grad():
        got = encoder(torch.from_numpy(images).permute(0, 3, 1, 2), max_stride=32)
        want = _reference_features(images, state)
    assert sorted(got) == [4, 8, 16, 32]
    for stride, tensor in got.items():
        assert tensor.shape == (2, CHANNELS[stride], math.ceil(size[0] / stride), math.ceil(size[1] / stride))
        torch.testing.assert_close(tensor, want[stride], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("up_to_block", [None, 5])
def test_folded_batchnorm_computes_the_same_features(state, up_to_block):
    model = EfficientNetLite0(pretrained=True).eval()
    model.freeze(5)
    model.fold_batchnorm(up_to_block)
    folded = [n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if up_to_block is None:
        assert folded == []
    else:   # the prefix lost its BatchNorms, the later blocks keep theirs (they may still train)
        assert not any(n.startswith(("_bn0", "_blocks.4.")) for n in folded)
        assert "_blocks.5._bn1" in folded and "_bn1" in folded
        assert not model._conv_stem.bias.requires_grad and model._blocks[5]._bn1.weight.requires_grad
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(2, 45, 77, 3), dtype=np.uint8)
    with torch.no_grad():
        got = model(torch.from_numpy(images).permute(0, 3, 1, 2), max_stride=32)
        want = _reference_features(images, state)
    for stride, tensor in got.items():
        torch.testing.assert_close(tensor, want[stride], rtol=1e-4, atol=1e-4)
    model.fold_batchnorm()      # folding again (the rest) is allowed and still exact
    with torch.no_grad():
        again = model(torch.from_numpy(images).permute(0, 3, 1, 2), max_stride=32)
    for stride, tensor in again.items():
        torch.testing.assert_close(tensor, want[stride], rtol=1e-4, atol=1e-4)


def test_default_output_stops_at_stride_16(encoder):
    with torch.no_grad():
        feats = encoder(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    assert sorted(feats) == [4, 8, 16]


def test_freeze_keeps_batchnorm_statistics(encoder):
    model = EfficientNetLite0(pretrained=True)
    model.freeze(5)
    model.train()
    assert all(not p.requires_grad for p in model._blocks[4].parameters())
    assert all(p.requires_grad for p in model._blocks[5].parameters())
    before = model._blocks[7]._bn1.running_mean.clone()
    model(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    assert torch.equal(before, model._blocks[7]._bn1.running_mean)


@pytest.mark.shared
def test_imagenet_head_recognises_a_real_bear(encoder, davis2016_root):
    """The ported weights classify DAVIS's `bear` frame as ImageNet class 294 (brown bear)."""
    import cv2

    from vosbench.io import read_frame

    path = sorted((davis2016_root / "JPEGImages").glob("*/bear/00000.jpg"))[0]
    image = cv2.resize(read_frame(path), (224, 224), interpolation=cv2.INTER_AREA)
    with torch.no_grad():
        logits = encoder.classify(torch.from_numpy(image).permute(2, 0, 1)[None])
    assert int(logits.argmax()) == 294
