"""``s2m-stm``: an interactive method of the modern design (IPN, MiVOS): a scribble-to-mask network
turns the scribbles into a mask of their frame, the STM baseline propagates it with the memory of
every interacted frame, and the new propagation is fused with the previous one between interactions.

Each interaction, for every scribbled frame t:

1. *Scribble-to-mask* (`S2MNet`): per object to correct, the frame's features, the object's current
   mask and the positive (its own) and negative (every other id's) scribble maps give its corrected
   mask; the objects are merged by STM's soft aggregation. ``interaction="grabcut"`` uses the
   GrabCut step of ``scribble-propagation`` instead (an ablation, and the method without weights).
2. *Propagation*: the STM baseline's network (``weights/stm.pt``, no online fine-tuning) carries the
   mask forward and backward from t, up to (not into) the nearest interacted frames or the ends of
   the video; its memory holds every interacted frame with its mask, every `mem_every`-th propagated
   frame and the previous one. A frame's encoder features and key depend on the image alone, so they
   are computed once per video and reused by every later interaction.
3. *Fusion* (``fusion="linear"``): between t and an earlier interacted frame, the new propagation and
   the previous masks are averaged with weights by temporal distance (MiVOS's linear fusion rule): at
   a frame i between interacted frames a and t the new mask weighs ``|i - a| / |t - a|``. Beyond the
   last interacted frame on a side the new propagation replaces the old one. ``fusion="none"`` always
   replaces (the ablation). ``fusion="learned"`` replaces the linear rule between interacted frames by
   a small network (``weights/fusion.pt``; `vosbench_baselines.fusion`, a simplified version of MiVOS's
   difference-aware fusion) that corrects the linear mix from both probabilities, the distances and the
   frame's encoder features; beyond the last interacted frame the new propagation replaces the old.

Frames are processed with their short side at `size` pixels; the masks are upsampled to the frame.
Scribbled pixels always take their id on their frame. Multi-object throughout: one S2M pass per
object touched by the scribbles, soft aggregation of objects in S2M and in propagation.

The weights in ``weights/s2m.pt`` hold the scribble-to-mask network only (fp16); it reads the
features of the STM baseline's encoder, whose weights come from ``weights/stm.pt``. See
``weights/MODEL_CARD_s2m.md`` for data, steps and scores.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar, Mapping

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vosbench.errors import VosbenchError
from vosbench.io.scribbles import annotated_frames, scribbles_to_masks
from vosbench.methods.base import InteractiveMethod, Video
from vosbench.methods.device import prepare_torch
from vosbench_baselines.encoder import CHANNELS
from vosbench_baselines.stm import DEFAULT_WEIGHTS as STM_WEIGHTS
from vosbench_baselines.stm import _label_of_highest, _upsample, aggregate, load_stm
from vosbench_baselines.training import weights_sha256

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "s2m.pt"
# Short side frames are processed at. STM was trained on DAVIS's 240p frames zoomed 0.64-1.6x.
PROCESSING_SIZE = 240
# Scribbles are drawn this many pixels wide at the processing size (training draws them alike).
SCRIBBLE_THICKNESS = 3
INTERACTIONS = ("network", "grabcut")
FUSIONS = ("linear", "none", "learned")
DEFAULT_FUSION_WEIGHTS = WEIGHTS_DIR / "fusion.pt"
TRAINING_PARTS = ("s2m", "fusion")


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=dilation * (k // 2), dilation=dilation)


class _Res(nn.Module):
    def __init__(self, cin: int, cout: int, dilation: int = 1):
        super().__init__()
        self.conv1 = _conv(cin, cout, dilation=dilation)
        self.conv2 = _conv(cout, cout, dilation=dilation)
        self.skip = None if cin == cout else _conv(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(F.relu(x))))
        return y + (x if self.skip is None else self.skip(x))


class S2MNet(nn.Module):
    """Scribble-to-mask: (frame features at strides 4/8/16, current mask, positive and negative
    scribbles) -> logits of the corrected mask at stride 4.

    The frame features are those of the STM baseline's encoder (the project's EfficientNet-Lite0 with
    the blocks STM trained), computed once per frame and shared with propagation; a guidance branch
    brings the three maps down to stride 16, where they meet the frame's features, and a decoder with
    skip connections (dilated at stride 16 for context) brings the result back to stride 4.
    """

    def __init__(self):
        super().__init__()
        self.guide2 = _conv(3, 16, 3, 2)
        self.guide4 = _conv(16, 32, 3, 2)
        self.guide8 = _conv(32, 48, 3, 2)
        self.guide16 = _conv(48, 64, 3, 2)
        self.fuse16 = _Res(CHANNELS[16] + 64, 128)
        self.context16 = _Res(128, 128, dilation=2)
        self.context16b = _Res(128, 128, dilation=4)
        self.skip8 = _conv(CHANNELS[8] + 48, 128, 1)
        self.block8 = _Res(128, 64)
        self.skip4 = _conv(CHANNELS[4] + 32, 64, 1)
        self.block4 = _Res(64, 32)
        self.head = _conv(32, 1)

    def forward(self, feats: Mapping[int, torch.Tensor], guidance: torch.Tensor) -> torch.Tensor:
        """feats {4, 8, 16: (B, C, h, w)}; guidance (B, 3, H, W): mask, positive, negative in 0..1
        -> logits (B, 1, H/4, W/4) (at the size of feats[4])."""
        g2 = F.relu(self.guide2(guidance))
        g4 = F.relu(self.guide4(g2))
        g8 = F.relu(self.guide8(g4))
        g16 = F.relu(self.guide16(g8))

        def fit(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
            return x if x.shape[-2:] == like.shape[-2:] else F.interpolate(
                x, size=like.shape[-2:], mode="bilinear", align_corners=False)

        x = self.fuse16(torch.cat([feats[16], fit(g16, feats[16])], 1))
        x = self.context16b(self.context16(x))
        x = F.interpolate(x, size=feats[8].shape[-2:], mode="bilinear", align_corners=False)
        x = self.block8(x + self.skip8(torch.cat([feats[8], fit(g8, feats[8])], 1)))
        x = F.interpolate(x, size=feats[4].shape[-2:], mode="bilinear", align_corners=False)
        x = self.block4(x + self.skip4(torch.cat([feats[4], fit(g4, feats[4])], 1)))
        return self.head(F.relu(x))


def load_s2m(path: Path, net: S2MNet | None = None) -> S2MNet:
    """`net` (a new S2MNet when None) with the weights exported by `vosbench train --method s2m-stm`."""
    from vosbench_baselines.training import load_exported_into

    return load_exported_into(
        S2MNet() if net is None else net, path, "scribble-to-mask",
        "Reinstall vosbench (the weights ship in vosbench_baselines/weights/), pass --option weights=PATH with "
        "the final.pt of `vosbench train --method s2m-stm`, or use --option interaction=grabcut.",
        "vosbench train --method s2m-stm")


def scribble_maps(scribbles: Mapping[str, Any], frame: int, size: tuple[int, int],
                  thickness: int = SCRIBBLE_THICKNESS) -> np.ndarray:
    """The scribbles of `frame` rasterised at `size` (H, W): int16 ids, -1 where none."""
    return scribbles_to_masks(scribbles, size[0], size[1], frames=[frame], thickness=thickness)[frame]


def guidance_maps(previous: np.ndarray, drawn: np.ndarray, object_id: int) -> np.ndarray:
    """(3, H, W) float32: the object's current mask, its positive and its negative scribbles."""
    return np.stack([previous == object_id, drawn == object_id, (drawn >= 0) & (drawn != object_id)]
                    ).astype(np.float32)


def s2m_losses(logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Binary cross-entropy and soft IoU loss; logits and target (B, 1, H, W)."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum((1, 2, 3))
    union = (prob + target - prob * target).sum((1, 2, 3))
    iou = (1 - (inter + 1) / (union + 1)).mean()
    return {"loss": bce + iou, "bce": bce, "iou": iou}


class _VideoState:
    """What an interactive method keeps about one video between interactions."""

    def __init__(self, n_frames: int, size: tuple[int, int], proc: tuple[int, int], n_objects: int):
        self.size, self.proc = size, proc
        self.feats: list[dict[int, torch.Tensor] | None] = [None] * n_frames
        self.keys: list[torch.Tensor | None] = [None] * n_frames
        self.probs: list[torch.Tensor | None] = [None] * n_frames          # (K, h, w) object probabilities
        self.memory: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}      # interacted frame -> key, value
        self.masks = np.zeros((n_frames, *size), np.uint8)
        self.n_objects = n_objects


class S2MSTM(InteractiveMethod):
    """Scribble-to-mask network, STM propagation from the memory of every interacted frame, fusion.

    Options: weights (the scribble-to-mask network; default the committed ``weights/s2m.pt``),
    stm_weights (default the STM baseline's ``weights/stm.pt``), interaction (``network`` or
    ``grabcut``), fusion (``linear``, ``none`` or ``learned``), fusion_weights (the learned fusion's
    network; default the committed ``weights/fusion.pt``), size (short side frames are processed at),
    mem_every (a propagated frame joins the memory every N frames), threads, device.
    """

    name: ClassVar[str] = "s2m-stm"

    def __init__(self, device: str = "auto", weights: str | Path | None = None,
                 stm_weights: str | Path | None = None, interaction: str = "network", fusion: str = "linear",
                 size: int = PROCESSING_SIZE, mem_every: int = 5, threads: int | None = None,
                 fusion_weights: str | Path | None = None, **options: Any):
        super().__init__(device=device, **options)
        if interaction not in INTERACTIONS:
            raise VosbenchError(f"s2m-stm: interaction must be one of {', '.join(INTERACTIONS)}, got {interaction!r}")
        if fusion not in FUSIONS:
            raise VosbenchError(f"s2m-stm: fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        self.size, self.mem_every = int(size), int(mem_every)
        if self.size < 16 or self.mem_every < 1:
            raise VosbenchError("s2m-stm: size must be >= 16 and mem_every >= 1")
        self.interaction, self.fusion = interaction, fusion
        self.device = prepare_torch(device, threads)
        self.stm_weights = Path(stm_weights) if stm_weights else STM_WEIGHTS
        self.stm = load_stm(self.stm_weights).to(self.device).eval()
        self.stm.encoder.fold_batchnorm()
        self.weights = None
        self.s2m: S2MNet | None = None
        if interaction == "network":
            self.weights = Path(weights) if weights else DEFAULT_WEIGHTS
            self.s2m = load_s2m(self.weights).to(self.device).eval()
        self.fusion_weights = None
        self.fuser = None
        if fusion == "learned":
            from vosbench_baselines.fusion import fuse, load_fusion

            self.fusion_weights = Path(fusion_weights) if fusion_weights else DEFAULT_FUSION_WEIGHTS
            self.fuser = load_fusion(self.fusion_weights).to(self.device).eval()
            self._fuse = fuse
        self.options.update(interaction=interaction, fusion=fusion, size=self.size, mem_every=self.mem_every,
                            stm_weights_sha256=weights_sha256(self.stm_weights),
                            weights_sha256=weights_sha256(self.weights) if self.weights else None)
        if self.fusion_weights is not None:
            self.options["fusion_weights_sha256"] = weights_sha256(self.fusion_weights)
        self._states: dict[str, _VideoState] = {}
        self.last_timings: dict[str, float] = {}

    def describe(self) -> str:
        return f"s2m-stm (interactive, {self.interaction} + stm propagation, fusion {self.fusion}, {self.device})"

    # -- features ------------------------------------------------------------------------
    def _processing_size(self, size: tuple[int, int]) -> tuple[int, int]:
        height, width = size
        if min(height, width) <= self.size:
            return height, width
        factor = self.size / min(height, width)
        return max(16, int(round(height * factor))), max(16, int(round(width * factor)))

    def _frame(self, video: Video, state: _VideoState, t: int) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """The encoder features and key of frame t, computed once per video."""
        if state.feats[t] is None:
            image = np.ascontiguousarray(video.frames[t])
            if state.proc != state.size:
                image = cv2.resize(image, (state.proc[1], state.proc[0]), interpolation=cv2.INTER_AREA)
            frame = torch.from_numpy(image).to(self.device).permute(2, 0, 1)[None]
            feats = self.stm.encode(frame)
            state.feats[t] = feats
            state.keys[t] = self.stm.key(feats[16])
        return state.feats[t], state.keys[t]

    # -- step 1: scribbles -> mask ----------------------------------------------------------
    def _targets(self, drawn: np.ndarray, previous: np.ndarray, object_ids: list[int]) -> list[int]:
        """Objects to correct: those scribbled, and those a scribble of another id touches."""
        ids = {int(i) for i in np.unique(drawn[drawn > 0])}
        ids |= {int(i) for i in np.unique(previous[drawn >= 0]) if i > 0}
        return [o for o in object_ids if o in ids]

    def _interacted_mask(self, video: Video, state: _VideoState, t: int, scribbles: Mapping[str, Any],
                         previous: np.ndarray | None, object_ids: list[int]) -> torch.Tensor:
        """Object probabilities (K, h, w) of the scribbled frame t."""
        proc = state.proc
        k = len(object_ids)
        prev_full = np.zeros(state.size, np.uint8) if previous is None else previous
        if self.interaction == "grabcut":
            from vosbench_baselines.interactive import scribbles_to_frame_mask

            drawn_full = scribbles_to_masks(scribbles, *state.size, frames=[t])[t]
            # GrabCut's colour models start from OpenCV's global generator: seeded, the answer does not
            # depend on what ran before.
            cv2.setRNGSeed(0)
            labels = scribbles_to_frame_mask(video.frames[t], drawn_full, previous)
            if proc != state.size:
                labels = cv2.resize(labels, (proc[1], proc[0]), interpolation=cv2.INTER_NEAREST)
            lab = torch.from_numpy(labels).to(self.device)
            return torch.stack([(lab == o).float() for o in object_ids]) if k else torch.zeros(0, *proc)
        prev = prev_full if proc == state.size else cv2.resize(prev_full, (proc[1], proc[0]),
                                                               interpolation=cv2.INTER_NEAREST)
        drawn = scribble_maps(scribbles, t, proc)
        feats, _ = self._frame(video, state, t)
        # Objects not corrected keep their current region, as logits of a confident mask.
        logits = torch.stack([torch.from_numpy(np.where(prev == o, 8.0, -8.0).astype(np.float32))
                              for o in object_ids]).to(self.device)
        targets = self._targets(drawn, prev, object_ids)
        if targets:
            guidance = torch.from_numpy(np.stack([guidance_maps(prev, drawn, o) for o in targets])).to(self.device)
            batch = {s: f.expand(len(targets), -1, -1, -1) for s, f in feats.items()}
            out = _upsample(self.s2m(batch, guidance), proc)[:, 0]
            for j, o in enumerate(targets):
                logits[object_ids.index(o)] = out[j]
        prob = torch.softmax(aggregate(logits[None]), dim=1)[0, 1:]
        # Scribbled pixels take their id.
        for j, o in enumerate(object_ids):
            own = torch.from_numpy(drawn == o).to(self.device)
            if own.any():
                prob[:, own] = 0
                prob[j, own] = 1
        background = torch.from_numpy(drawn == 0).to(self.device)
        prob[:, background] = 0
        return prob

    # -- step 2 and 3: propagation and fusion ------------------------------------------------
    def _value(self, state: _VideoState, t: int, prob: torch.Tensor) -> torch.Tensor:
        return self.stm.value(state.feats[t][16], prob[None]).flatten(3)

    def _hold_interacted(self, video: Video, state: _VideoState, t: int, prob: torch.Tensor) -> None:
        """Frame t as interacted with: its object probabilities (K, h, w), and its key and value in the
        memory (replacing, and moving last, an earlier interaction's)."""
        self._frame(video, state, t)
        state.probs[t] = prob
        state.memory.pop(t, None)
        state.memory[t] = (state.keys[t].flatten(2), self._value(state, t, prob))

    def _propagate(self, video: Video, state: _VideoState, t: int, frames: list[int],
                   other: int | None) -> list[int]:
        """Propagate from interacted frame t over `frames` (in order, away from t); `other` is the
        interacted frame the run stops before (None: the end of the video). Returns the frames set."""
        mem_keys = [key for key, _ in state.memory.values()]
        mem_values = [value for _, value in state.memory.values()]
        previous: tuple[torch.Tensor, torch.Tensor] | None = None
        for step, i in enumerate(frames, start=1):
            feats, key = self._frame(video, state, i)
            extra_k, extra_v = ([previous[0]], [previous[1]]) if previous is not None else ([], [])
            readout = self.stm.read(torch.cat(mem_keys + extra_k, 2), torch.cat(mem_values + extra_v, 3), key)
            logits = _upsample(self.stm.decoder(readout, feats), state.proc)
            prob = torch.softmax(aggregate(logits), dim=1)[0, 1:]
            old = state.probs[i]
            if self.fusion in ("linear", "learned") and other is not None and old is not None:
                weight = abs(i - other) / abs(t - other)      # 1 at t, 0 at the other interacted frame
                if self.fusion == "learned":
                    prob = self._fuse(self.fuser, old, prob, weight, abs(i - t), abs(i - other), feats[8])
                else:
                    prob = weight * prob + (1 - weight) * old
            state.probs[i] = prob
            value = self._value(state, i, prob)
            if step % self.mem_every == 0:
                mem_keys.append(key.flatten(2))
                mem_values.append(value)
                previous = None
            else:
                previous = (key.flatten(2), value)
        return frames

    def _render(self, state: _VideoState, frames: list[int], object_ids: list[int]) -> None:
        ids = np.array([0] + object_ids, dtype=np.uint8)
        for i in frames:
            prob = state.probs[i]
            full = prob if state.proc == state.size else _upsample(prob[None], state.size)[0]
            label = _label_of_highest(torch.cat([(1 - full.sum(0, keepdim=True)).clamp(0, 1), full]))
            state.masks[i] = ids[label.cpu().numpy()]

    @torch.no_grad()
    def interact(self, video: Video, scribbles: Mapping[str, Any], previous_masks: np.ndarray | None) -> np.ndarray:
        n_frames = len(video.frames)
        size = tuple(video.size)
        object_ids = sorted(int(o) for o in video.object_ids) or sorted(
            {int(s["object_id"]) for f in scribbles["scribbles"] for s in f if s["object_id"] > 0})
        state = self._states.get(video.name)
        if previous_masks is None or state is None or state.masks.shape[0] != n_frames \
                or state.n_objects != len(object_ids):
            state = _VideoState(n_frames, size, self._processing_size(size), len(object_ids))
            self._states = {video.name: state}      # one video at a time: the features are large
            if previous_masks is not None:
                state.masks[:] = previous_masks
        else:
            state.masks[:] = previous_masks
        timings = {"s2m": 0.0, "propagation": 0.0}
        for t in annotated_frames(scribbles):
            start = time.perf_counter()
            prev = None if previous_masks is None else state.masks[t].copy()
            prob = self._interacted_mask(video, state, t, scribbles, prev, object_ids)
            self._hold_interacted(video, state, t, prob)
            timings["s2m"] += time.perf_counter() - start
            start = time.perf_counter()
            others = [c for c in state.memory if c != t]
            later = [c for c in others if c > t]
            earlier = [c for c in others if c < t]
            nxt = min(later) if later else None
            prv = max(earlier) if earlier else None
            changed = [t]
            changed += self._propagate(video, state, t, list(range(t + 1, nxt if nxt is not None else n_frames)), nxt)
            changed += self._propagate(video, state, t, list(range(t - 1, prv if prv is not None else -1, -1)), prv)
            self._render(state, changed, object_ids)
            drawn = scribbles_to_masks(scribbles, *size, frames=[t])[t]
            for o in np.unique(drawn[drawn >= 0]):
                state.masks[t][drawn == o] = int(o)
            timings["propagation"] += time.perf_counter() - start
        self.last_timings = timings
        return state.masks.copy()

    # -- training ------------------------------------------------------------------------
    @classmethod
    def train(cls, config) -> Any:
        """`vosbench train --method s2m-stm`: train the scribble-to-mask network; writes final.pt.

        Samples: a frame of the dataset split (`--data`, `--split`) or of a generated synthetic set,
        one of its objects, a simulated error of its mask (`simulate_error`), and the robot's
        scribbles (official defaults) correcting that error. The STM baseline's encoder gives the
        features and stays as it is. Options (`--option KEY=JSON`): crop (side), scale (zoom range),
        max_skip (largest gap to the frame whose mask stands for a propagation's error),
        mix_fraction (share of samples with an object pasted in from another sequence),
        synthetic_sequences (sequences of the generated synthetic set, seed 1, added to the data;
        0: none), davis_videos (use only the first N sequences of the split; null: all), warmup,
        stm_weights (the encoder's STM weights; default the committed stm.pt), propagation_errors (the
        share of samples whose wrong mask is STM's own propagation of a split sequence from its first
        or last frame, `PropagatedErrors`, computed once into <out>/propagation-errors.npz; 0: none).

        ``--option part='"fusion"'`` trains the learned fusion network instead (`_train_fusion`);
        part is ``s2m`` (the default) or ``fusion``.
        """
        options_in = dict(config.options)
        part = options_in.pop("part", "s2m")
        if part not in TRAINING_PARTS:
            raise VosbenchError(f"s2m-stm training: part must be one of {', '.join(TRAINING_PARTS)}, got {part!r}")
        if part == "fusion":
            return cls._train_fusion(config, options_in)
        from vosbench_baselines.data import Augment, ClipSampler
        from vosbench_baselines.training import export_weights, train_with_cosine

        device = prepare_torch(config.device, config.threads)
        options: dict[str, Any] = {"crop": 192, "scale": [0.8, 1.5], "max_skip": 10, "mix_fraction": 0.25,
                                   "synthetic_sequences": 15, "davis_videos": None, "warmup": 100,
                                   "stm_weights": None, "propagation_errors": PROPAGATION_SHARE}
        unknown = sorted(set(options_in) - set(options))
        if unknown:
            raise VosbenchError(f"unknown s2m-stm training option(s) {unknown}; known: {sorted(options)} and part.")
        options.update(options_in)
        davis = _training_sequences(config, options["davis_videos"])
        parts = [davis]
        if int(options["synthetic_sequences"]) > 0:
            parts.append(_synthetic_training_frames(int(options["synthetic_sequences"])))
        data = ConcatFrames(parts) if len(parts) > 1 else parts[0]
        crop = int(options["crop"])
        clips = ClipSampler(data, clip_length=2, max_skip=int(options["max_skip"]),
                            augment=Augment(crop=(crop, crop), scale=tuple(options["scale"])),
                            mix_fraction=float(options["mix_fraction"]), seed=config.seed)
        stm_path = Path(options["stm_weights"]) if options["stm_weights"] else STM_WEIGHTS
        share = options["propagation_errors"]
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise VosbenchError(f"s2m-stm training option propagation_errors must be a share in 0..1, got {share!r}.")
        propagated = None
        if share > 0:
            propagated = PropagatedErrors(davis, davis.sequences, Path(config.out) / "propagation-errors.npz",
                                          stm_path, config.device, config.threads, progress=config.progress)
        sampler = S2MSampler(clips, seed=config.seed, propagated=propagated, propagation_share=float(share))
        stm = load_stm(stm_path).to(device).eval()
        stm.encoder.fold_batchnorm()
        stm.requires_grad_(False)
        torch.manual_seed(config.seed)
        net = S2MNet().to(device)
        optimizer = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=1e-4)

        def compute(step: int) -> dict[str, torch.Tensor]:
            images, guidance, target = sampler.batch(config.batch_size)
            with torch.no_grad():
                feats = stm.encode(torch.from_numpy(images).to(device).permute(0, 3, 1, 2))
            logits = _upsample(net(feats, torch.from_numpy(guidance).to(device)), target.shape[-2:])
            return s2m_losses(logits, torch.from_numpy(target).to(device))

        started = time.time()

        def export(step: int) -> Path:
            meta = {"method": "s2m-stm", "steps": step, "seed": config.seed, "data": Path(config.data).name,
                    "split": config.split, "sequences": len(davis.sequences), "batch_size": config.batch_size,
                    "options": {**options, "stm_weights": stm_path.name},
                    "stm_weights_sha256": weights_sha256(stm_path),
                    "wall_seconds_this_session": round(time.time() - started, 1)}
            return export_weights(net, Path(config.out) / "final.pt", meta)

        return train_with_cosine(config, net, optimizer, compute, sampler, export, int(options["warmup"]))

    @classmethod
    def _train_fusion(cls, config, options_in: dict[str, Any]) -> Any:
        """`vosbench train --method s2m-stm --option part='"fusion"'`: train the learned fusion; writes
        final.pt (the `FusionNet` only, fp16).

        Samples (`build_fusion_data`) come from STM propagations on the
        sequences of `--data`/`--split` (frames must be at the processing size: DAVIS 2016's 240p
        train frames), computed once and cached in `cache` (a .npz; default <out>/fusion-data.npz),
        seeded by --seed. Options: cache, pairs_per_sequence, min_gap, max_gap, frames_per_pair,
        davis_videos (first N sequences; null: all), crop ([h, w], multiples of 8), warmup,
        stm_weights (default the committed stm.pt).
        """
        from vosbench_baselines.fusion import FusionNet, FusionSampler, fusion_losses
        from vosbench_baselines.training import arrays_for_recipe, export_weights, train_with_cosine

        options: dict[str, Any] = {"cache": None, "pairs_per_sequence": 10, "min_gap": 4, "max_gap": 40,
                                   "frames_per_pair": 8, "davis_videos": None, "crop": [160, 256], "warmup": 50,
                                   "stm_weights": None}
        unknown = sorted(set(options_in) - set(options))
        if unknown:
            raise VosbenchError(f"unknown s2m-stm fusion training option(s) {unknown}; known: {sorted(options)} "
                                "and part.")
        options.update(options_in)
        stm_path = Path(options["stm_weights"]) if options["stm_weights"] else STM_WEIGHTS
        method = cls(device=config.device, interaction="grabcut", fusion="none", stm_weights=stm_path,
                     threads=config.threads)
        device = method.device
        frames = _training_sequences(config, options["davis_videos"])
        names = frames.sequences
        recipe = {"version": 1, "data": Path(config.data).name, "split": config.split, "sequences": names,
                  "seed": config.seed, "size": method.size, "mem_every": method.mem_every,
                  "stm_weights_sha256": weights_sha256(stm_path),
                  **{k: options[k] for k in ("pairs_per_sequence", "min_gap", "max_gap", "frames_per_pair")}}
        cache = Path(options["cache"]) if options["cache"] else Path(config.out) / "fusion-data.npz"
        data_started = time.time()
        data = arrays_for_recipe(cache, recipe, lambda: build_fusion_data(
            method, frames, names, seed=config.seed, pairs_per_sequence=int(options["pairs_per_sequence"]),
            min_gap=int(options["min_gap"]), max_gap=int(options["max_gap"]),
            frames_per_pair=int(options["frames_per_pair"]), progress=True),
            what="fusion training data", refuse_other_recipe=True)
        data_seconds = time.time() - data_started
        if not len(data["old"]):
            raise VosbenchError("s2m-stm fusion training: no samples (sequences shorter than min_gap + 1?)")
        sampler = FusionSampler(data, crop=tuple(int(c) for c in options["crop"]), seed=config.seed)
        torch.manual_seed(config.seed)
        net = FusionNet().to(device)
        optimizer = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=1e-4)

        def compute(step: int) -> dict[str, torch.Tensor]:
            b = {k: v.to(device) for k, v in sampler.batch(config.batch_size).items()}
            logits = net(b["old"], b["new"], b["w"], b["to_t"], b["to_other"], b["feats8"])
            return fusion_losses(logits, b["target"])

        started = time.time()

        def export(step: int) -> Path:
            meta = {"method": "s2m-stm", "part": "fusion", "steps": step, "seed": config.seed,
                    "data": Path(config.data).name, "split": config.split, "sequences": len(names),
                    "samples": int(len(data["old"])), "batch_size": config.batch_size,
                    "options": {**options, "cache": cache.name, "stm_weights": stm_path.name},
                    "stm_weights_sha256": weights_sha256(stm_path),
                    "data_seconds_this_session": round(data_seconds, 1),
                    "wall_seconds_this_session": round(time.time() - started, 1)}
            return export_weights(net, Path(config.out) / "final.pt", meta)

        return train_with_cosine(config, net, optimizer, compute, sampler, export, int(options["warmup"]))


def _training_sequences(config, davis_videos: int | None) -> Any:
    """The `TrainingFrames` of `--data`/`--split`: its first `davis_videos` sequences (None: all)."""
    from vosbench.io.factory import open_dataset
    from vosbench_baselines.data import TrainingFrames

    dataset = open_dataset(config.dataset, config.data, split=config.split, resolution=config.resolution)
    names = dataset.sequence_names()
    if davis_videos is not None:
        names = names[:int(davis_videos)]
    return TrainingFrames(dataset, sequences=names)


def _training_video(frames: Any, sequence: str) -> Video:
    """A training sequence of `frames` as the one-object `Video` the method's propagation reads."""
    n = frames.length(sequence)
    return Video(name=sequence, frames=[frames.image(sequence, j) for j in range(n)],
                 frame_names=[f"{j:05d}" for j in range(n)], object_ids=[1])


def _synthetic_training_frames(n_sequences: int) -> "ConcatFrames":
    """Every sequence of a synthetic set generated with seed 1 (the embedded dataset is seed 0)."""
    from vosbench.io.factory import open_dataset
    from vosbench.io.synthetic import SyntheticParams, default_dataset_root
    from vosbench_baselines.data import TrainingFrames

    root = default_dataset_root(seed=1, params=SyntheticParams(n_sequences=n_sequences, n_frames=20))
    return ConcatFrames([TrainingFrames(open_dataset(None, root, split=split)) for split in ("train", "val")])


class ConcatFrames:
    """Several `TrainingFrames` as one (sequence names prefixed with the part's index)."""

    def __init__(self, parts: list[Any]):
        self._parts = {}
        for index, part in enumerate(parts):
            for sequence in part.sequences:
                self._parts[f"{index}/{sequence}"] = (part, sequence)
        self.sequences = sorted(self._parts)

    def length(self, sequence: str) -> int:
        part, name = self._parts[sequence]
        return part.length(name)

    def image(self, sequence: str, index: int) -> np.ndarray:
        part, name = self._parts[sequence]
        return part.image(name, index)

    def mask(self, sequence: str, index: int) -> np.ndarray:
        part, name = self._parts[sequence]
        return part.mask(name, index)


ERROR_KINDS = ("empty", "neighbour", "erode", "dilate", "shift", "cut", "merge")
ERROR_WEIGHTS = (0.15, 0.25, 0.1, 0.1, 0.1, 0.15, 0.15)
# Share of training samples whose wrong mask is the STM network's own propagation (`PropagatedErrors`)
# rather than a simulated error; 0 gives the first recipe (the committed weights before it).
PROPAGATION_SHARE = 0.1
# The learned fusion's training pairs: kinds of error of the mask the old propagation starts from (an
# imperfect earlier answer), and the mild ones of the new interaction's mask.
FUSION_OLD_ERRORS = ("neighbour", "erode", "dilate", "shift", "cut", "merge")
FUSION_NEW_ERRORS = ("erode", "dilate", "shift", "cut")


def _disk(radius: float) -> np.ndarray:
    r = max(1, int(round(radius)))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _ellipse(shape: tuple[int, int], center: tuple[float, float], radii: tuple[float, float], angle: float
             ) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    cv2.ellipse(out, (int(center[0]), int(center[1])), (max(1, int(radii[0])), max(1, int(radii[1]))), angle,
                0, 360, 1, -1)
    return out.astype(bool)


def simulate_error(gt: np.ndarray, kind: str, rng: np.random.Generator, neighbour: np.ndarray | None = None,
                   others: np.ndarray | None = None) -> np.ndarray:
    """A wrong mask of the object `gt` (bool (H, W)): the kind of error a propagation or an earlier
    correction makes. kind: ``empty`` (nothing yet: the first interaction), ``neighbour`` (the
    object's mask on a nearby frame: a propagation that lags), ``erode``, ``dilate``, ``shift``,
    ``cut`` (a part missing), ``merge`` (a neighbouring region added: another object, else a blob)."""
    gt = np.asarray(gt, bool)
    height, width = gt.shape
    area = int(gt.sum())
    scale = max(8.0, float(np.sqrt(area)))
    ys, xs = np.nonzero(gt)
    if kind == "empty" or not area:
        return np.zeros_like(gt)
    if kind == "neighbour":
        return np.asarray(neighbour, bool) if neighbour is not None else gt.copy()
    m = gt.astype(np.uint8)
    if kind == "erode":
        return cv2.erode(m, _disk(rng.uniform(0.05, 0.25) * scale)).astype(bool)
    if kind == "dilate":
        return cv2.dilate(m, _disk(rng.uniform(0.05, 0.25) * scale)).astype(bool)
    if kind == "shift":
        dx, dy = rng.uniform(-0.3, 0.3, size=2) * scale
        matrix = np.float32([[1, 0, dx], [0, 1, dy]])
        return cv2.warpAffine(m, matrix, (width, height), flags=cv2.INTER_NEAREST).astype(bool)
    if kind == "cut":
        if rng.random() < 0.5:          # a half-plane through the object
            angle = rng.uniform(0, 2 * np.pi)
            proj = (xs - xs.mean()) * np.cos(angle) + (ys - ys.mean()) * np.sin(angle)
            limit = np.quantile(proj, rng.uniform(0.5, 0.9))
            out = gt.copy()
            out[ys[proj > limit], xs[proj > limit]] = False
            return out
        k = int(rng.integers(len(ys)))     # a blob around a point of the object
        blob = _ellipse(gt.shape, (xs[k], ys[k]), tuple(rng.uniform(0.15, 0.45, size=2) * scale),
                        rng.uniform(0, 180))
        return gt & ~blob
    if kind == "merge":
        if others is not None and others.any() and rng.random() < 0.5:
            return gt | np.asarray(others, bool)
        edge = gt & ~cv2.erode(m, np.ones((3, 3), np.uint8)).astype(bool)
        ey, ex = np.nonzero(edge)
        k = int(rng.integers(len(ey)))
        radii = tuple(rng.uniform(0.15, 0.5, size=2) * scale)
        direction = np.array([ex[k] - xs.mean(), ey[k] - ys.mean()])
        direction = direction / (np.linalg.norm(direction) + 1e-6)
        center = np.array([ex[k], ey[k]]) + direction * 0.5 * min(radii)
        return gt | _ellipse(gt.shape, (center[0], center[1]), radii, rng.uniform(0, 180))
    raise ValueError(f"unknown error kind {kind!r}; known: {ERROR_KINDS}")


class S2MSampler:
    """Training samples of the scribble-to-mask network: (image, guidance, target) of one object.

    From a clip of two frames (`ClipSampler`): an object of the first frame; a simulated error of its
    mask (the second frame's mask for ``neighbour``; with probability 0.3 a second error on top); the
    robot's scribbles correcting it (official defaults, drawn on the crop). With `propagated` (a
    `PropagatedErrors`), a share `propagation_share` of the samples instead takes a frame's mask as the
    STM network propagated it (the error of real propagation), warped with the frame and its ground
    truth by the clip sampler's augmentation. Seeded; resumable.
    """

    def __init__(self, clips: Any, seed: int = 0, second_error: float = 0.3,
                 propagated: "PropagatedErrors | None" = None, propagation_share: float = 0.0):
        from vosbench.tracks.interactive.robot import ScribbleRobot

        self.clips = clips
        self.rng = np.random.default_rng([seed, 17])
        self.second_error = second_error
        self.propagated = propagated if propagation_share > 0 else None
        self.propagation_share = float(propagation_share)
        self._robot = ScribbleRobot

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "clips": self.clips.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.clips.load_state_dict(state["clips"])

    def _simulated(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(image, object's ground truth, wrong mask) with a simulated error; None: draw again."""
        rng = self.rng
        clip = self.clips.sample()
        if not clip.num_objects:
            return None
        obj = int(rng.integers(1, clip.num_objects + 1))
        ids = clip.masks[0]
        gt = ids == obj
        kind = str(rng.choice(ERROR_KINDS, p=ERROR_WEIGHTS))
        others = (ids > 0) & ~gt
        wrong = simulate_error(gt, kind, rng, neighbour=clip.masks[1] == obj, others=others)
        if kind != "empty" and rng.random() < self.second_error:
            extra = str(rng.choice(ERROR_KINDS[2:]))
            wrong = simulate_error(wrong, extra, rng, others=others) if wrong.any() else wrong
        return clip.images[0], gt, wrong

    def _real_propagation(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(image, ground truth, STM's propagated mask) of one frame of `propagated`, augmented alike."""
        rng, clips, source = self.rng, self.clips, self.propagated
        sequence = source.sequences[int(rng.integers(len(source.sequences)))]
        direction = int(rng.integers(2))            # 0: propagated from the first frame, 1: from the last
        n = source.frames.length(sequence)
        if n < 2:
            return None
        index = int(rng.integers(1, n)) if direction == 0 else int(rng.integers(0, n - 1))
        gt = (source.frames.mask(sequence, index) > 0).astype(np.uint8)
        if int(gt.sum()) < clips.min_object_pixels:
            return None
        image = source.frames.image(sequence, index)
        wrong = source.mask(sequence, direction, index).astype(np.uint8)
        center, flip, scale, angle = clips._clip_transform(gt)
        image_w, gt_w = clips._warp(image, gt, center, scale, angle, flip, jitter=False)
        _, wrong_w = clips._warp(image, wrong, center, scale, angle, flip, jitter=False)
        from vosbench_baselines.data import _color

        return _color(image_w, clips.rng, clips.augment), gt_w.astype(bool), wrong_w.astype(bool)

    def sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = self.rng
        for _ in range(20):
            if self.propagated is not None and rng.random() < self.propagation_share:
                drawn = self._real_propagation()
            else:
                drawn = self._simulated()
            if drawn is None:
                continue
            image, gt, wrong = drawn
            robot = self._robot(seed=int(rng.integers(2**31)))
            paths = robot.frame_scribbles(gt.astype(np.uint8), wrong.astype(np.uint8), 1)
            if not paths:
                continue
            scribbled = scribbles_to_masks({"scribbles": [paths]}, *gt.shape, thickness=SCRIBBLE_THICKNESS)[0]
            guidance = guidance_maps(wrong.astype(np.uint8), scribbled, 1)
            return image, guidance, gt[None].astype(np.float32)
        raise RuntimeError("no training sample with scribbles in 20 draws")

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        samples = [self.sample() for _ in range(size)]
        return tuple(np.stack([s[i] for s in samples]) for i in range(3))


class PropagatedErrors:
    """Every frame's mask as the STM network propagates the ground truth of a sequence's first frame
    forward and of its last frame backward (the method's own propagation, fusion off): the errors a
    real propagation makes, growing with the distance, for `S2MSampler`.

    Computed once per recipe (sequences, STM weights, processing size, memory interval) and kept,
    bit-packed, in `cache` (`training.arrays_for_recipe`); a cache of another recipe is computed again.
    """

    def __init__(self, frames: Any, sequences: list[str], cache: Path, stm_weights: Path, device: str,
                 threads: int | None, progress: bool = False):
        from vosbench_baselines.training import arrays_for_recipe

        self.frames = frames
        self.sequences = list(sequences)
        recipe = {"version": 1, "sequences": self.sequences, "size": PROCESSING_SIZE, "mem_every": 5,
                  "stm_weights_sha256": weights_sha256(stm_weights)}

        def compute() -> dict[str, np.ndarray]:
            method = S2MSTM(device=device, stm_weights=stm_weights, interaction="grabcut", fusion="none",
                            threads=threads)
            names = self.sequences
            if progress:
                from tqdm.auto import tqdm

                names = tqdm(names, desc="propagating the training sequences", unit="seq", leave=False)
            arrays = {}
            for name in names:
                masks = self._propagate(method, name)
                arrays[f"packed/{name}"] = np.packbits(masks.ravel())
                arrays[f"shape/{name}"] = np.array(masks.shape, dtype=np.int64)
            return arrays

        arrays = arrays_for_recipe(Path(cache), recipe, compute, what="real propagation errors",
                                   refuse_other_recipe=False, compress=True)
        self._packed = {name: arrays[f"packed/{name}"] for name in self.sequences}
        self._shapes = {name: tuple(int(v) for v in arrays[f"shape/{name}"]) for name in self.sequences}

    def _propagate(self, method: "S2MSTM", sequence: str) -> np.ndarray:
        """(2, n, H, W) bool: the object as propagated from the first frame, and from the last."""
        video = _training_video(self.frames, sequence)
        n = len(video.frames)
        size = tuple(video.frames[0].shape[:2])
        out = np.zeros((2, n, *size), dtype=bool)
        with torch.no_grad():
            shared: _VideoState | None = None
            for direction, start in enumerate((0, n - 1)):
                state = _VideoState(n, size, method._processing_size(size), 1)
                if shared is not None:       # a frame's features and key depend on the image alone
                    state.feats, state.keys = shared.feats, shared.keys
                shared = state
                out[direction, start] = self.frames.mask(sequence, start) > 0
                gt = out[direction, start].astype(np.float32)
                if state.proc != size:
                    gt = cv2.resize(gt, (state.proc[1], state.proc[0]), interpolation=cv2.INTER_NEAREST)
                method._hold_interacted(video, state, start, torch.from_numpy(gt[None]).to(method.device))
                order = list(range(1, n)) if start == 0 else list(range(n - 2, -1, -1))
                method._propagate(video, state, start, order, None)
                for i in order:
                    prob = state.probs[i]
                    full = prob if state.proc == size else _upsample(prob[None], size)[0]
                    out[direction, i] = (full[0] > 0.5).cpu().numpy()
        return out

    def mask(self, sequence: str, direction: int, index: int) -> np.ndarray:
        shape = self._shapes[sequence]
        plane = int(np.prod(shape[2:]))
        start = (direction * shape[1] + index) * plane
        # Bits of one (H, W) plane: unpack the bytes that hold it.
        first, last = start // 8, (start + plane + 7) // 8
        bits = np.unpackbits(self._packed[sequence][first:last])[start - 8 * first:start - 8 * first + plane]
        return bits.reshape(shape[2:]).astype(bool)


def build_fusion_data(method: Any, frames: Any, sequences: list[str], seed: int, pairs_per_sequence: int,
                      min_gap: int, max_gap: int, frames_per_pair: int, progress: bool = False
                      ) -> dict[str, np.ndarray]:
    """Samples of the learned fusion (`vosbench_baselines.fusion`) from STM propagations between two
    interacted frames.

    method: an `S2MSTM` (its STM network, processing size and `_propagate` are used, fusion off);
    frames: a `TrainingFrames`-like object. Per sequence `pairs_per_sequence` pairs (a, t), |t - a| in
    [min_gap, max_gap], a before or after t with equal chance; the mask at a is the ground truth or
    (p 0.6) a simulated error of it; the mask at t the ground truth or (p 0.25) a mild error. Up to
    `frames_per_pair` frames between them are kept. Returns arrays: old, new (N, H, W) uint8
    probabilities x 255, target (N, H, W) bool, feats8 (N, 40, h, w) float16, w, to_t, to_other (N,),
    pair (N,) index of the pair.
    """
    rng = np.random.default_rng([seed, 23])
    saved_fusion = method.fusion
    method.fusion = "none"
    out: dict[str, list] = {k: [] for k in ("old", "new", "target", "feats8", "w", "to_t", "to_other", "pair")}
    pair_index = 0
    try:
        for sequence in sequences:
            n = frames.length(sequence)
            if n < min_gap + 1:
                continue
            video = _training_video(frames, sequence)
            masks = [frames.mask(sequence, j) for j in range(n)]
            size = video.frames[0].shape[:2]
            proc = method._processing_size(size)
            if proc != tuple(size):
                raise VosbenchError("fusion training data: frames must be at the processing size "
                                    f"({size} vs {proc}); use DAVIS's 240p train frames.")
            feats_cache: list = [None] * n
            keys_cache: list = [None] * n
            for _ in range(pairs_per_sequence):
                gap = int(rng.integers(min_gap, min(max_gap, n - 1) + 1))
                a = int(rng.integers(0, n - gap))
                t = a + gap
                if rng.random() < 0.5:
                    a, t = t, a
                gt_a, gt_t = masks[a] > 0, masks[t] > 0
                mask_a = gt_a
                if rng.random() < 0.6 and gt_a.any():
                    kind = str(rng.choice(FUSION_OLD_ERRORS))
                    near = masks[int(np.clip(a + rng.integers(-8, 9), 0, n - 1))] > 0
                    mask_a = simulate_error(gt_a, kind, rng, neighbour=near)
                mask_t = gt_t
                if rng.random() < 0.25 and gt_t.any():
                    mask_t = simulate_error(gt_t, str(rng.choice(FUSION_NEW_ERRORS)), rng)
                state = _VideoState(n, tuple(size), proc, 1)
                state.feats, state.keys = feats_cache, keys_cache     # shared by the pairs of a sequence
                step = 1 if t > a else -1
                with torch.no_grad():
                    # The earlier interaction at a, propagated towards t (and beyond: not needed).
                    method._hold_interacted(video, state, a,
                                            torch.from_numpy(mask_a[None].astype(np.float32)).to(method.device))
                    between = list(range(a + step, t, step))
                    method._propagate(video, state, a, between, None)
                    old = {i: state.probs[i].clone() for i in between}
                    # The new interaction at t, propagated back towards a (memory {a, t}).
                    method._hold_interacted(video, state, t,
                                            torch.from_numpy(mask_t[None].astype(np.float32)).to(method.device))
                    back = between[::-1]
                    method._propagate(video, state, t, back, a)
                keep = sorted(rng.choice(len(between), size=min(frames_per_pair, len(between)), replace=False))
                for j in keep:
                    i = between[j]
                    out["old"].append(np.round(old[i][0].cpu().numpy() * 255).astype(np.uint8))
                    out["new"].append(np.round(state.probs[i][0].cpu().numpy() * 255).astype(np.uint8))
                    out["target"].append(masks[i] > 0)
                    out["feats8"].append(state.feats[i][8][0].cpu().numpy().astype(np.float16))
                    out["w"].append(abs(i - a) / abs(t - a))
                    out["to_t"].append(abs(i - t))
                    out["to_other"].append(abs(i - a))
                    out["pair"].append(pair_index)
                pair_index += 1
            if progress:
                log.info("fusion data: %s done (%d samples)", sequence, len(out["old"]))
    finally:
        method.fusion = saved_fusion
    return {k: np.stack(v) if k in ("old", "new", "target", "feats8") else np.asarray(v, np.float32)
            for k, v in out.items()}
