"""The official-weights variants load a state dict shaped like the authors' released checkpoints, strictly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vosbench.errors import InputError
from vosbench.methods.base import Video
from vosbench.methods.registry import get_method
from vosbench_baselines.official import (OSVOSOfficial, OSVOSOfficialNet, STMOfficial, STMOfficialNet,
                                         load_official_state, official_key_spec)

# Keys read off the authors' model definitions (seoungwugoh/STM model.py; kmaninis/OSVOS-PyTorch
# networks/vgg_osvos.py), with the shapes their constructors give. Independent of official_key_spec.
STM_SPOT_KEYS = {
    "Encoder_M.conv1_m.weight": (64, 1, 7, 7),
    "Encoder_M.conv1_o.weight": (64, 1, 7, 7),
    "Encoder_M.conv1.weight": (64, 3, 7, 7),
    "Encoder_M.bn1.running_var": (64,),
    "Encoder_M.res2.0.downsample.0.weight": (256, 64, 1, 1),
    "Encoder_Q.res3.3.conv2.weight": (128, 128, 3, 3),
    "Encoder_Q.res4.5.conv3.weight": (1024, 256, 1, 1),
    "Encoder_Q.mean": (1, 3, 1, 1),
    "KV_M_r4.Key.weight": (128, 1024, 3, 3),
    "KV_Q_r4.Value.bias": (512,),
    "Decoder.convFM.weight": (256, 1024, 3, 3),
    "Decoder.ResMM.conv2.weight": (256, 256, 3, 3),
    "Decoder.RF3.convFS.weight": (256, 512, 3, 3),
    "Decoder.RF2.ResFS.conv1.bias": (256,),
    "Decoder.pred2.weight": (2, 256, 3, 3),
}
OSVOS_SPOT_KEYS = {
    "stages.0.0.weight": (64, 3, 3, 3),
    "stages.0.2.bias": (64,),
    "stages.1.1.weight": (128, 64, 3, 3),
    "stages.2.5.weight": (256, 256, 3, 3),
    "stages.4.5.weight": (512, 512, 3, 3),
    "side_prep.0.weight": (16, 128, 3, 3),
    "score_dsn.3.weight": (1, 16, 1, 1),
    "upscale.3.weight": (16, 16, 32, 32),
    "upscale_.0.weight": (1, 1, 4, 4),
    "fuse.weight": (1, 64, 1, 1),
}


def _state_from_spec(kind: str, prefix: str = "", seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_key_spec(kind).items():
        if key.endswith("num_batches_tracked"):
            state[prefix + key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[prefix + key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[prefix + key] = torch.randn(shape, generator=gen) * 0.01
    return state


@pytest.mark.parametrize("kind,spot,count", [("stm", STM_SPOT_KEYS, 558), ("osvos", OSVOS_SPOT_KEYS, 52)])
def test_documented_key_list_matches_the_authors_files(kind, spot, count):
    spec = official_key_spec(kind)
    assert len(spec) == count
    for key, shape in spot.items():
        assert spec[key] == shape, key


@pytest.mark.parametrize("kind,net_cls,prefix", [("stm", STMOfficialNet, "module."),   # saved from DataParallel
                                                 ("osvos", OSVOSOfficialNet, "")])
def test_state_dict_from_the_key_list_loads_strictly(tmp_path, kind, net_cls, prefix):
    state = _state_from_spec(kind, prefix)
    path = tmp_path / f"{kind}.pth"
    torch.save(state, path)
    net = net_cls()
    load_official_state(net, path)
    loaded = net.state_dict()
    assert set(loaded) == {k[len(prefix):] for k in state}
    for key in list(state)[:: max(1, len(state) // 40)]:
        assert torch.equal(loaded[key[len(prefix):]], state[key]), key


def test_the_authors_stm_file_layout_loads_strictly(tmp_path):
    """As eval_DAVIS.py saved it: keys from nn.DataParallel (``module.``), the pre-1.6 (non-zip)
    serialisation, and, from PyTorch before 0.4.1, no BatchNorm num_batches_tracked."""
    state = {k: v for k, v in _state_from_spec("stm", "module.").items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "STM_weights.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    with open(path, "rb") as handle:
        assert handle.read(2) != b"PK", "the legacy format, not a zip archive"
    net = STMOfficialNet()
    load_official_state(net, path)
    loaded = net.state_dict()
    assert all(torch.equal(loaded[k[len("module."):]], v) for k, v in list(state.items())[::25])
    counters = [k for k in loaded if k.endswith("num_batches_tracked")]
    # Two ResNet-50 trunks to layer3: bn1, then 3, 4 and 6 blocks of three BatchNorms plus one downsample each.
    assert len(counters) == 2 * (1 + (3 * 3 + 1) + (4 * 3 + 1) + (6 * 3 + 1)) and all(int(loaded[k]) == 0 for k in counters)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("wrap", ["plain", "module", "state_dict"])
def test_the_authors_osvos_file_layouts_load_strictly(tmp_path, legacy, wrap):
    state = _state_from_spec("osvos", "module." if wrap == "module" else "", seed=3)
    path = tmp_path / "parent_epoch-239.pth"
    torch.save({"state_dict": state} if wrap == "state_dict" else state, path,
               _use_new_zipfile_serialization=not legacy)
    net = OSVOSOfficialNet()
    load_official_state(net, path)
    prefix = "module." if wrap == "module" else ""
    assert all(torch.equal(net.state_dict()[k[len(prefix):]], v) for k, v in state.items())


def test_a_missing_counter_does_not_excuse_a_missing_parameter(tmp_path):
    state = {k: v for k, v in _state_from_spec("stm").items()
             if not k.endswith("num_batches_tracked") and k != "Decoder.pred2.bias"}
    path = tmp_path / "STM_weights.pth"
    torch.save(state, path)
    with pytest.raises(InputError, match="1 missing.*Decoder.pred2.bias"):
        load_official_state(STMOfficialNet(), path)


@pytest.mark.parametrize("change", ["extra", "missing", "shape"])
def test_a_checkpoint_that_differs_is_refused_with_the_difference(tmp_path, change):
    state = _state_from_spec("osvos")
    if change == "extra":
        state["stages.5.0.weight"] = torch.zeros(1)
    elif change == "missing":
        del state["fuse.bias"]
    else:
        state["side_prep.0.weight"] = torch.zeros(16, 64, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(InputError) as info:
        load_official_state(OSVOSOfficialNet(), path)
    named = {"extra": "stages.5.0.weight", "missing": "fuse.bias", "shape": "side_prep.0.weight"}[change]
    assert named in str(info.value)


def test_missing_weights_option_is_an_input_error():
    method = get_method("stm-official")(device="cpu")
    with pytest.raises(InputError, match="--weights"):
        method.network()


def _tiny_video(size=(48, 64), frames=4) -> Video:
    rng = np.random.default_rng(0)
    images = [(rng.random(size + (3,)) * 255).astype(np.uint8) for _ in range(frames)]
    first = np.zeros(size, np.uint8)
    first[10:30, 20:40] = 1
    first[5:12, 45:60] = 2
    return Video("tiny", images, [f"{t:05d}" for t in range(frames)], {0: first}, [1, 2])


def test_stm_official_segments_with_loaded_weights(tmp_path):
    path = tmp_path / "STM_weights.pth"
    torch.save(_state_from_spec("stm", "module."), path)
    video = _tiny_video()
    masks = list(STMOfficial(device="cpu", weights=str(path)).segment(video))
    assert len(masks) == 4
    assert all(m.shape == video.size and m.dtype == np.uint8 for m in masks)
    assert np.array_equal(masks[0], video.given_masks[0])
    assert set(np.unique(np.concatenate(masks))) <= {0, 1, 2}


def test_osvos_official_finetunes_and_segments(tmp_path):
    path = tmp_path / "parent_epoch-239.pth"
    torch.save(_state_from_spec("osvos"), path)
    video = _tiny_video(frames=3)
    method = OSVOSOfficial(device="cpu", weights=str(path), finetune_steps=1)
    masks = list(method.segment(video))
    assert len(masks) == 3 and all(m.shape == video.size and m.dtype == np.uint8 for m in masks)
    assert set(np.unique(np.concatenate(masks))) <= {0, 1, 2}
    # The loaded parent is kept unchanged for the next video: fine-tuning worked on copies.
    parent = _state_from_spec("osvos")
    assert all(torch.equal(method._state[k], parent[k]) for k in parent)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_official_variants_run_on_cuda(tmp_path):
    stm_path, osvos_path = tmp_path / "stm.pth", tmp_path / "osvos.pth"
    torch.save(_state_from_spec("stm", "module."), stm_path)
    torch.save(_state_from_spec("osvos"), osvos_path)
    video = _tiny_video(frames=2)
    assert len(list(STMOfficial(device="cuda", weights=str(stm_path)).segment(video))) == 2
    assert len(list(OSVOSOfficial(device="cuda", weights=str(osvos_path), finetune_steps=1).segment(video))) == 2
