"""A generic, seeded, resumable training loop for the baselines.

A run folder holds::

    checkpoints/step-000500.pt   full training state (model, optimizer, sampler RNG, torch RNG),
                                 written atomically; the two newest are kept
    losses.csv                   step, elapsed seconds, learning rate and every loss term
    config.json                  what the run was started with
    final.pt                     the exported weights (see `export_weights`)

`train_loop` stops at a step budget or a wall-clock budget, whichever comes first, and
resumes from the newest checkpoint when asked: a resumed run continues the same
sample stream and loss curve as an uninterrupted one.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import random
import re
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from vosbench.errors import InputError
from vosbench.io import atomic_path, atomic_write
from vosbench.methods.progress import phase_bar
from vosbench.methods.training import TrainConfig, TrainSummary

log = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"step-(\d+)\.pt$")


class Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def latest_checkpoint(out: Path) -> Path | None:
    folder = Path(out) / "checkpoints"
    if not folder.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_RE.search(p.name)))
    return found[-1][1] if found else None


def _save_checkpoint(out: Path, step: int, state: dict, keep: int = 2) -> Path:
    folder = Path(out) / "checkpoints"
    target = folder / f"step-{step:06d}.pt"
    with atomic_path(target) as tmp:
        torch.save(state, tmp)
    old = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_RE.search(p.name)))
    for _, path in old[:-keep]:
        path.unlink(missing_ok=True)
    return target


def trainable_keys(model: nn.Module) -> list[str]:
    """State-dict keys of parameters that train, plus the buffers of modules that hold one."""
    keys = [name for name, p in model.named_parameters() if p.requires_grad]
    prefixes = {k.rsplit(".", 1)[0] for k in keys}
    for name, _ in model.named_buffers():
        if name.rsplit(".", 1)[0] in prefixes:
            keys.append(name)
    state = model.state_dict()
    return [k for k in state if k in set(keys)]


def export_weights(model: nn.Module, path: Path, metadata: Mapping[str, Any] | None = None,
                   keys: list[str] | None = None) -> Path:
    """Save the trained parts only, as float16 (integer buffers as they are), atomically.

    Whatever comes from a pretrained package (the frozen encoder) is left out: it is
    loaded from that package, so the file only carries what training changed.
    """
    keys = keys if keys is not None else trainable_keys(model)
    state = model.state_dict()
    tensors = {k: (state[k].detach().to("cpu").half() if state[k].is_floating_point() else state[k].detach().cpu())
               for k in keys}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": tensors, "metadata": dict(metadata or {})}, tmp)
    return Path(path)


def weights_sha256(path: Path) -> str:
    """The first 16 hex digits of a weights file's SHA-256: what a method's options record, so that
    masks made with other weights are never reused."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def load_exported(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not Path(path).is_file():
        raise InputError(path, "weights file does not exist.",
                         "Pass --weights pointing at a file written by `vosbench train` (its final.pt).")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is the same user error
        raise InputError(path, f"is not a readable weights file ({exc}).",
                         "Pass a final.pt written by `vosbench train`, or re-export it.") from exc
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise InputError(path, "is not a vosbench weights file (no 'state_dict').",
                         "Pass a final.pt written by `vosbench train`.")
    return blob["state_dict"], blob.get("metadata", {})


def load_exported_into(net: nn.Module, path: Path, what: str, missing_fix: str, written_by: str) -> nn.Module:
    """`net` with the exported weights of `path`, loaded strictly; an InputError naming the file when it
    is missing (`missing_fix`) or holds another network's parameters (names or shapes)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{what} weights file does not exist.", missing_fix)
    state, _ = load_exported(path)
    expected = net.state_dict()
    if set(state) != set(expected) or any(tuple(state[k].shape) != tuple(v.shape) for k, v in expected.items()):
        raise InputError(path, f"does not hold the parameters of this {what} network.",
                         f"Pass weights written by `{written_by}` with this version of vosbench.")
    net.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
    return net


def arrays_for_recipe(path: Path, recipe: Mapping[str, Any], build: Callable[[], dict[str, np.ndarray]], *,
                      what: str, refuse_other_recipe: bool, compress: bool = False) -> dict[str, np.ndarray]:
    """Arrays computed once per `recipe` and kept in the .npz at `path` (written atomically, the recipe
    beside them as JSON). A file made with another recipe is computed again, or refused with an
    InputError naming it when `refuse_other_recipe` (a file the user named: never overwritten)."""
    path = Path(path)
    recipe_json = json.dumps(recipe, sort_keys=True, default=str)
    if path.is_file():
        with np.load(path, allow_pickle=False) as held:
            if "recipe" in held.files and str(held["recipe"]) == recipe_json:
                log.info("%s: reusing %s", what, path)
                return {k: held[k] for k in held.files if k != "recipe"}
        if refuse_other_recipe:
            raise InputError(path, f"holds {what} made with another recipe.",
                             "Delete it, or pass another --option cache=PATH.")
    started = time.monotonic()
    arrays = build()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            (np.savez_compressed if compress else np.savez)(handle, recipe=np.asarray(recipe_json), **arrays)
    log.info("%s: computed in %.0f s, kept in %s", what, time.monotonic() - started, path)
    return arrays


def train_with_cosine(config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
                      compute_losses: Callable[[int], dict[str, torch.Tensor]], sampler: Stateful,
                      export: Callable[[int], Path | None], warmup: int) -> TrainSummary:
    """`train_loop` with a seeded, resumable `sampler` and the cosine rate (`warmup` steps, then down to
    5% at `config.steps`), as both learned parts of s2m-stm train."""
    return train_loop(config=config, model=model, optimizer=optimizer, compute_losses=compute_losses,
                      stateful={"sampler": sampler}, export=export,
                      lr_at=lambda step: cosine_lr(step, config.steps, config.learning_rate, warmup=warmup))


class LossLog:
    """losses.csv, appended row by row; on resume rows past the checkpoint are dropped."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.columns: list[str] | None = None

    def truncate_after(self, step: int) -> None:
        if not self.path.is_file():
            return
        with self.path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            return
        self.columns = list(rows[0].keys())
        kept = [r for r in rows if int(r["step"]) <= step]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns)
        writer.writeheader()
        writer.writerows(kept)
        atomic_write(self.path, buffer.getvalue())

    def append(self, row: dict[str, float]) -> None:
        new = not self.path.is_file()
        if self.columns is None:
            self.columns = list(row)
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


def finetune_online(net: nn.Module, steps: int, lr: float,
                    loss_of_step: Callable[[], torch.Tensor | None], desc: str = "fine-tuning") -> list[float]:
    """Online fine-tuning of `net` in place: `steps` Adam steps on what `loss_of_step` returns
    (None skips a step), every trainable parameter at rate `lr`; returns the losses. Shown as a
    progress bar named `desc` when the runner shows progress (`vosbench.methods.progress`).

    BatchNorm layers keep the trained network's statistics: the batch statistics of a few
    augmented copies of one frame are no estimate of a video's.
    """
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
    net.train()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
    losses = []
    for _ in phase_bar(range(steps), desc=desc, unit="step"):
        loss = loss_of_step()
        if loss is None:
            continue
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    net.eval()
    return losses


def cosine_lr(step: int, total: int, base: float, warmup: int = 100, floor: float = 0.05) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def constant_then_cosine_lr(step: int, total: int, base: float, decay_from: int | None,
                            floor: float = 0.05) -> float:
    """`base` until `decay_from`, then a cosine down to `floor` x `base` at `total` (None: constant).

    A run trained at a constant rate can be resumed with a later `decay_from` to anneal it.
    """
    if decay_from is None or step < decay_from:
        return base
    progress = min(1.0, (step - decay_from) / max(1, total - decay_from))
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def train_loop(*, config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
               compute_losses: Callable[[int], dict[str, torch.Tensor]],
               stateful: Mapping[str, Stateful] | None = None,
               export: Callable[[int], Path | None] | None = None,
               lr_at: Callable[[int], float] | None = None,
               max_grad_norm: float | None = 5.0) -> TrainSummary:
    """Run `compute_losses(step)` -> {"loss": total, other terms...} for `config.steps` steps.

    stateful: extra objects with state_dict/load_state_dict saved in checkpoints (samplers).
    export: called once at the end with the last step; returns the weights file it wrote.
    lr_at: learning rate of each step (for every parameter group, scaled by the group's
        ``lr_scale`` when set).
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    stateful = dict(stateful or {})
    losses = LossLog(out / "losses.csv")
    step, elapsed_before = 0, 0.0
    checkpoint = latest_checkpoint(out) if config.resume else None
    if config.resume and checkpoint is None:
        log.info("no checkpoint in %s: starting from step 0", out)
    if not config.resume and (latest_checkpoint(out) is not None or (out / "losses.csv").exists()):
        raise InputError(out, "already holds a training run.",
                         "Pass --resume to continue it, or choose another --out folder.")
    seed_everything(config.seed)
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for name, obj in stateful.items():
            obj.load_state_dict(state["stateful"][name])
        torch.set_rng_state(state["torch_rng"])
        step, elapsed_before = int(state["step"]), float(state["elapsed"])
        losses.truncate_after(step)
        log.info("resumed from %s (step %d)", checkpoint, step)
    else:
        atomic_write(out / "config.json", config.to_json())

    def checkpoint_now(at: int, elapsed: float) -> None:
        _save_checkpoint(out, at, {
            "step": at, "elapsed": elapsed, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "stateful": {name: obj.state_dict() for name, obj in stateful.items()},
            "torch_rng": torch.get_rng_state(),
        })

    start = time.monotonic()
    deadline = None if config.max_minutes is None else start + 60 * config.max_minutes
    stopped_by = "steps"
    last: dict[str, float] = {}
    model.train()
    bar = tqdm(total=config.steps, initial=step, disable=not config.progress, desc="train", unit="step")
    try:
        while step < config.steps:
            if deadline is not None and time.monotonic() >= deadline:
                stopped_by = "time"
                break
            lr = lr_at(step) if lr_at else None
            if lr is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
            terms = compute_losses(step)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if max_grad_norm:
                torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]],
                                               max_grad_norm)
            optimizer.step()
            step += 1
            elapsed = elapsed_before + time.monotonic() - start
            last = {k: float(v.detach()) for k, v in terms.items()}
            losses.append({"step": step, "seconds": round(elapsed, 2),
                           "lr": optimizer.param_groups[0]["lr"], **{k: round(v, 5) for k, v in last.items()}})
            bar.update(1)
            bar.set_postfix(loss=f"{last['loss']:.4f}")
            if step % config.checkpoint_every == 0:
                checkpoint_now(step, elapsed)
    finally:
        bar.close()
    elapsed = elapsed_before + time.monotonic() - start
    if step % config.checkpoint_every != 0 or stopped_by == "time":
        checkpoint_now(step, elapsed)
    weights = export(step) if export else None
    log.info("stopped by %s after %d steps, %.1f min of training", stopped_by, step, elapsed / 60)
    return TrainSummary(steps=step, wall_seconds=elapsed, final_losses=last, weights=weights, stopped_by=stopped_by)
