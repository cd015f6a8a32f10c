"""Record golden outputs of the authors' STM and OSVOS-PyTorch code for the parity tests.

Run by hand, never by pytest, with checkouts of the authors' repositories at the pinned commits::

    git clone https://github.com/seoungwugoh/STM && git -C STM checkout 905f11492a6692dd0d0fa395881a8ec09b211a36
    git clone https://github.com/kmaninis/OSVOS-PyTorch && git -C OSVOS-PyTorch checkout 36562efeed51dd994b44329ea3cff5e0d76e83ac
    OMP_NUM_THREADS=1 MPLBACKEND=Agg python tests/official_parity/make_golden.py --stm STM --osvos OSVOS-PyTorch

It writes tests/official_parity/golden.npz (about 670 KB; about 20 s on one CPU thread). Nothing of the authors' code is
copied into the project: their modules are imported from the checkouts, and the two pieces that
are scripts rather than functions (``Run_video`` of STM's ``eval_DAVIS.py``; the learning rate,
weight decay, ``nAveGrad`` and ``optimizer`` assignments of OSVOS's ``train_online.py``) are
read out of the checked-out files with ``ast`` and executed as they are.

Every parameter of each network is drawn from a seeded generator (``seeded.py``, shared with
the tests) and loaded with ``strict=True`` into the authors' modules, so no checkpoint is
stored: the tests draw the same parameters for vosbench's modules.

Stubs, because the authors' modules import packages that do not load here:

* ``torchvision`` does not import beside the CPU build of torch used here. STM's ``model.py``
  only calls ``torchvision.models.resnet50(pretrained=True)`` and keeps ``conv1``, ``bn1``,
  ``relu``, ``maxpool`` and ``layer1..layer3``. The stub builds torchvision's ResNet-50 layout
  (Bottleneck blocks with the stride on the 3x3 convolution, a 1x1 convolution + BatchNorm
  downsample on each layer's first block, 3/4/6/3 blocks) with random parameters and downloads
  nothing; every parameter is then replaced by the strict load. ``torchvision.transforms`` is an
  empty module (imported, never used, by the modules loaded here).
* ``scipy.misc.imresize`` (removed from SciPy) is imported by OSVOS's ``davis_2016.py``; it is
  only called when ``inputRes`` is set, which it is not here, so the stub raises if called.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import random
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import seeded  # noqa: E402

STM_COMMIT = "905f11492a6692dd0d0fa395881a8ec09b211a36"
OSVOS_COMMIT = "36562efeed51dd994b44329ea3cff5e0d76e83ac"
STM_FILES = ["model.py", "helpers.py", "eval_DAVIS.py"]
OSVOS_FILES = ["networks/vgg_osvos.py", "layers/osvos_layers.py", "dataloaders/custom_transforms.py",
               "dataloaders/davis_2016.py", "train_online.py"]
# Parameters whose gradient, momentum buffer and change after one online step are recorded.
OSVOS_STEP_PARAMS = ["stages.0.0.weight", "stages.0.0.bias", "stages.4.5.bias", "side_prep.3.bias",
                     "side_prep.0.bias", "fuse.weight", "fuse.bias"]


# ----------------------------------------------------------------------------------------
# Stubs
# ----------------------------------------------------------------------------------------


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class _ResNet50(nn.Module):
    def __init__(self):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._layer(64, 3)
        self.layer2 = self._layer(128, 4, stride=2)
        self.layer3 = self._layer(256, 6, stride=2)
        self.layer4 = self._layer(512, 3, stride=2)

    def _layer(self, planes, blocks, stride=1):
        downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
                                   nn.BatchNorm2d(planes * 4))
        layers = [_Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        layers += [_Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)


def install_stubs() -> None:
    tv = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")
    models.resnet50 = lambda pretrained=False, **kwargs: _ResNet50()
    transforms = types.ModuleType("torchvision.transforms")
    tv.models, tv.transforms = models, transforms
    sys.modules.update({"torchvision": tv, "torchvision.models": models, "torchvision.transforms": transforms})
    try:
        import scipy.misc as misc
    except ImportError:
        misc = types.ModuleType("scipy.misc")
        sys.modules["scipy.misc"] = misc

    def imresize(*args, **kwargs):
        raise RuntimeError("scipy.misc.imresize stub called: inputRes must stay None")

    misc.imresize = imresize


# ----------------------------------------------------------------------------------------
# Checkouts
# ----------------------------------------------------------------------------------------


def check_checkout(root: Path, commit: str, files: list[str]) -> dict[str, str]:
    """Refuse a checkout at another commit; return the sha256 of the files the run reads."""
    try:
        top, head = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel", "HEAD"],
                                   capture_output=True, text=True, check=True).stdout.split()
    except (OSError, ValueError, subprocess.CalledProcessError):
        top = head = None
    if top is None or Path(top).resolve() != root.resolve():
        head = None   # an exported tree (git archive) rather than a clone: the file hashes identify it
    if head is not None and head != commit:
        raise SystemExit(f"{root}: checkout is at {head}, not the pinned {commit}; run git checkout {commit}.")
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in files}


def function_from_script(path: Path, name: str, namespace: dict) -> object:
    tree = ast.parse(path.read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]


def assignments_from_script(path: Path, names: list[str], namespace: dict) -> dict:
    tree = ast.parse(path.read_text())
    nodes = [n for n in tree.body if isinstance(n, ast.Assign) and len(n.targets) == 1
             and isinstance(n.targets[0], ast.Name) and n.targets[0].id in names]
    exec(compile(ast.Module(body=nodes, type_ignores=[]), str(path), "exec"), namespace)
    return {name: namespace[name] for name in names}


# ----------------------------------------------------------------------------------------
# STM
# ----------------------------------------------------------------------------------------


def frame_tensor(frame_uint8: np.ndarray) -> torch.Tensor:
    """(1, 3, H, W) as the authors' DAVIS_MO_Test: np.array(image) / 255., then .float()."""
    return torch.from_numpy(np.transpose(frame_uint8 / 255., (2, 0, 1)).copy()).float()[None]


def one_hot(mask: np.ndarray, k: int) -> np.ndarray:
    return np.stack([(mask == i).astype(np.uint8) for i in range(k)])


def record_stm(root: Path, out: dict) -> None:
    sys.path.insert(0, str(root))
    import model as stm_model   # noqa: E402 - the authors' model.py

    torch.manual_seed(0)
    net = stm_model.STM()
    spec = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    net.load_state_dict(seeded.stm_state(spec), strict=True)
    net.eval()
    k_ch = seeded.STM_K
    n = torch.tensor([2])
    with torch.no_grad():
        for i, size in enumerate(seeded.STM_SIZES):
            frames = seeded.smooth_frames(3, size, seed=100 + i)
            masks = [torch.from_numpy(seeded.soft_masks(size, 2, k_ch, seed=200 + 10 * i + j))[None] for j in range(2)]
            k0, v0 = net.memorize(frame_tensor(frames[0]), masks[0], n)
            k1, v1 = net.memorize(frame_tensor(frames[1]), masks[1], n)
            keys, values = torch.cat([k0, k1], dim=3), torch.cat([v0, v1], dim=3)
            logit = net.segment(frame_tensor(frames[2]), keys, values, n)
            tag = f"stm_{size[0]}x{size[1]}"
            out[f"{tag}_keys"] = keys[0, 1:3].numpy()
            out[f"{tag}_values"] = values[0, 1:3].numpy()
            out[f"{tag}_logit"] = logit[0, :4].numpy()          # background, 2 objects, one unused channel

        # The video loop of eval_DAVIS.py, run as it is.
        namespace = {"model": net, "np": np, "torch": torch, "F": F,
                     "tqdm": types.SimpleNamespace(tqdm=lambda x: x)}
        run_video = function_from_script(root / "eval_DAVIS.py", "Run_video", namespace)
        t_count, size = seeded.LOOP_FRAMES, seeded.LOOP_SIZE
        frames = seeded.smooth_frames(t_count, size, seed=300)
        fs = torch.cat([frame_tensor(f)[:, :, None] for f in frames], dim=2)       # 1, 3, T, H, W
        first = seeded.two_objects(size)
        ms = np.zeros((k_ch, t_count) + size, np.uint8)          # frames without a mask: 255 -> all zero
        ms[:, 0] = one_hot(first, k_ch)
        pred, es = run_video(fs, torch.from_numpy(ms).float()[None], t_count, torch.LongTensor([[2]]),
                             Mem_every=seeded.LOOP_EVERY)
        out["stm_loop_probs"] = es[0, :3].numpy()                  # 3, T, H, W
        out["stm_loop_labels"] = pred

    # Which frames are in memory when each frame is segmented, by the same Run_video.
    class Tracer:
        def __init__(self):
            self.memory = []

        def __call__(self, *args):
            if args[1].dim() > 4:
                self.memory.append([int(x) for x in args[1][0, 0, 0, :, 0, 0].tolist()])
                return torch.zeros(1, k_ch, 1, 1)
            return (torch.full((1, k_ch, 1, 1, 1, 1), float(args[0][0, 0, 0, 0])),) * 2

    tracer = Tracer()
    namespace = {"model": tracer, "np": np, "torch": torch, "F": F, "tqdm": types.SimpleNamespace(tqdm=lambda x: x)}
    run_video = function_from_script(root / "eval_DAVIS.py", "Run_video", namespace)
    count = seeded.SCHEDULE_FRAMES
    fs = torch.arange(count, dtype=torch.float32).view(1, 1, count, 1, 1).expand(1, 3, count, 1, 1).contiguous()
    run_video(fs, torch.zeros(1, k_ch, count, 1, 1), count, torch.LongTensor([[1]]), Mem_every=seeded.SCHEDULE_EVERY)
    width = max(len(m) for m in tracer.memory)
    out["stm_memory_frames"] = np.array([m + [-1] * (width - len(m)) for m in tracer.memory], np.int32)


# ----------------------------------------------------------------------------------------
# OSVOS
# ----------------------------------------------------------------------------------------


def authors_osvos_sample(db, frame_rgb: np.ndarray, mask01: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image and gt as davis_2016.DAVIS2016.make_img_gt_pair reads them (cv2.imread, BGR minus the
    means; gt / max), from files written losslessly (PNG bytes)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "JPEGImages/480p/seq").mkdir(parents=True)
        (root / "Annotations/480p/seq").mkdir(parents=True)
        (root / "JPEGImages/480p/seq/00000.jpg").write_bytes(cv2.imencode(".png", frame_rgb[..., ::-1])[1].tobytes())
        (root / "Annotations/480p/seq/00000.png").write_bytes(cv2.imencode(".png", mask01 * 255)[1].tobytes())
        dataset = db.DAVIS2016(train=True, db_root_dir=str(root), transform=None, seq_name="seq")
        img, gt = dataset.make_img_gt_pair(0)
        # ``gt / np.max([gt.max(), 1e-8])`` is float32 under NumPy 1.x (value-based casting), which
        # the authors used, but float64 under NumPy >= 2 (NEP 50), and cv2's nearest-neighbour warp
        # then rounds differently at a few boundary pixels: keep the authors' float32.
        return img, gt.astype(np.float32)


def record_osvos(root: Path, out: dict) -> None:
    sys.path.insert(0, str(root))
    import dataloaders.custom_transforms as tr   # noqa: E402 - the authors' modules
    import dataloaders.davis_2016 as db  # noqa: E402
    import networks.vgg_osvos as vo  # noqa: E402
    from layers.osvos_layers import class_balanced_cross_entropy_loss  # noqa: E402

    torch.manual_seed(0)
    net = vo.OSVOS(pretrained=0)
    spec = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    net.load_state_dict(seeded.osvos_state(spec), strict=True)
    to_tensor = tr.ToTensor()
    with torch.no_grad():
        for i, size in enumerate(seeded.OSVOS_SIZES):
            frame, mask = seeded.osvos_pair(size, seed=400 + i)
            img, _ = authors_osvos_sample(db, frame, mask)
            x = to_tensor({"image": img})["image"][None]
            for j, side in enumerate(net(x)):
                out[f"osvos_{size[0]}x{size[1]}_side{j}"] = side[0, 0].numpy()

    # One online step of train_online.py: nAveGrad augmented samples, loss summed (size_average=False)
    # and divided by nAveGrad, one SGD update.
    settings = assignments_from_script(root / "train_online.py", ["nAveGrad", "lr", "wd", "optimizer"],
                                       {"optim": torch.optim, "net": net})
    optimizer = settings["optimizer"]
    transforms = [tr.RandomHorizontalFlip(), tr.ScaleNRotate(rots=(-30, 30), scales=(.75, 1.25)), tr.ToTensor()]
    frame, mask = seeded.osvos_pair(seeded.OSVOS_STEP_SIZE, seed=500)
    img, gt = authors_osvos_sample(db, frame, mask)
    params = dict(net.named_parameters())
    before = {k: params[k].detach().clone() for k in OSVOS_STEP_PARAMS}
    draws, losses = [], []
    net.train()
    for i in range(settings["nAveGrad"]):
        random.seed(1000 + i)
        r = [random.random() for _ in range(3)]
        # RandomHorizontalFlip draws once, then ScaleNRotate draws the angle and the scale (its formulas).
        draws.append([float(r[0] < 0.5), 60.0 * r[1] - 30.0, 0.5 * r[2] - 0.25 + 1.0])
        random.seed(1000 + i)
        sample = {"image": img.copy(), "gt": gt.copy()}
        for t in transforms:
            sample = t(sample)
        out[f"osvos_aug{i}_image"] = sample["image"].numpy()
        out[f"osvos_aug{i}_gt"] = sample["gt"].numpy()
        inputs, gts = sample["image"][None], sample["gt"][None]
        inputs.requires_grad_()
        outputs = net.forward(inputs)
        loss = class_balanced_cross_entropy_loss(outputs[-1], gts, size_average=False)
        losses.append(loss.item())
        loss /= settings["nAveGrad"]
        loss.backward()
    grads = {k: params[k].grad.detach().clone() for k in OSVOS_STEP_PARAMS}
    optimizer.step()
    optimizer.zero_grad()
    out["osvos_image_input"] = img.astype(np.float32)
    out["osvos_gt_input"] = gt.astype(np.float32)
    out["osvos_aug_draws"] = np.array(draws, np.float64)
    out["osvos_step_losses"] = np.array(losses, np.float64)
    for k in OSVOS_STEP_PARAMS:
        out[f"osvos_step_grad.{k}"] = grads[k].numpy()
        out[f"osvos_step_buffer.{k}"] = optimizer.state[params[k]]["momentum_buffer"].numpy()
        out[f"osvos_step_delta.{k}"] = (params[k].detach().double() - before[k].double()).numpy()
    out["osvos_step_settings"] = np.array([settings["lr"], settings["wd"], settings["nAveGrad"]], np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stm", type=Path, required=True, help="checkout of github.com/seoungwugoh/STM")
    parser.add_argument("--osvos", type=Path, required=True, help="checkout of github.com/kmaninis/OSVOS-PyTorch")
    parser.add_argument("--out", type=Path, default=HERE / "golden.npz")
    args = parser.parse_args()
    torch.set_num_threads(1)
    install_stubs()
    meta = {"stm_commit": STM_COMMIT, "osvos_commit": OSVOS_COMMIT, "torch": torch.__version__,
            "stm_files_sha256": check_checkout(args.stm, STM_COMMIT, STM_FILES),
            "osvos_files_sha256": check_checkout(args.osvos, OSVOS_COMMIT, OSVOS_FILES)}
    out: dict[str, np.ndarray] = {}
    record_stm(args.stm.resolve(), out)
    record_osvos(args.osvos.resolve(), out)
    out["meta"] = np.array(json.dumps(meta, sort_keys=True))
    tmp = args.out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **out)
    tmp.replace(args.out)
    print(f"{args.out}: {args.out.stat().st_size / 1024:.0f} KiB, {len(out)} arrays")


if __name__ == "__main__":
    main()
