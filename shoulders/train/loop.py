"""The training loop as plain functions, after torchvision's reference scripts."""

from __future__ import annotations

import math
import random
import time
from typing import Iterable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .device import Precision


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


def _to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _bar_off(progress: bool) -> bool | None:
    """tqdm's ``disable``: off when asked, and (``None``) off when output is not a terminal, so logs hold no
    carriage-return lines; the per-epoch summary lines are printed either way."""
    return None if progress else True


def train_one_epoch(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    loader: Iterable, device: torch.device, *, epoch: int, precision: Precision,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                    scaler: torch.amp.GradScaler | None = None, channels_last: bool = False,
                    progress: bool = True, desc: str = "train") -> dict[str, float]:
    """One pass over ``loader``; the scheduler steps per batch. The caller sets train/eval modes (the strategy's
    BatchNorm policy), so this function never calls ``model.train()`` itself."""
    start = time.perf_counter()
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(loader, desc=f"{desc} epoch {epoch + 1}", leave=False, disable=_bar_off(progress), unit="batch")
    for step, (images, targets) in enumerate(bar):
        images, targets = _to_device(images, device, channels_last), targets.to(device, non_blocking=True)
        with precision.autocast(device):
            logits = model(images)
            loss = criterion(logits, targets)
        if not torch.isfinite(loss):
            lr = optimizer.param_groups[0]["lr"]
            raise TrainingDivergedError(
                f"the training loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; the learning rate "
                f"({lr:.2g} for the head) is probably too high: try lr={lr / 10:.2g}, or check the data for "
                f"extreme values")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        n = targets.shape[0]
        total_loss += loss.item() * n
        correct += (logits.argmax(1) == targets).sum().item()
        seen += n
        bar.set_postfix(loss=f"{total_loss / seen:.3f}")
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1), "images": seen,
            "seconds": time.perf_counter() - start}


@torch.inference_mode()
def predict_logits(model: nn.Module, loader: Iterable, device: torch.device, *, precision: Precision,
                   channels_last: bool = False, progress: bool = False, desc: str = "predict",
                   inference: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Runs ``model`` over ``loader`` in eval mode; returns (outputs as float32, targets).

    Where the loader knows how many images it yields, the outputs go straight into one preallocated array:
    no list of per-batch pieces and no concatenated copy of them (for 60 000 frozen features, 300 MB less).
    """
    was_training = model.training
    model.eval()
    total = _images_in(loader)
    outputs: list[torch.Tensor] = []
    buffer: torch.Tensor | None = None
    targets, filled = [], 0
    try:
        for images, target in tqdm(loader, desc=desc, leave=False, disable=_bar_off(progress), unit="batch"):
            with precision.autocast(device, inference=inference):
                out = model(_to_device(images, device, channels_last))
            if total is not None and buffer is None:
                buffer = torch.empty((total, *out.shape[1:]), dtype=torch.float32)
            if buffer is not None and not outputs and filled + len(out) <= total:
                buffer[filled:filled + len(out)].copy_(out)
                filled += len(out)
            else:  # no known length (or more than it said): collect the pieces
                outputs.append(out.float().cpu())
            targets.append(torch.as_tensor(target))
    finally:
        model.train(was_training)
    if not targets:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    if buffer is not None and not outputs:
        return buffer[:filled].numpy(), torch.cat(targets).numpy()
    pieces = ([buffer[:filled]] if buffer is not None else []) + outputs
    return torch.cat(pieces).numpy(), torch.cat(targets).numpy()


def _images_in(loader: Iterable) -> int | None:
    """How many images a ``DataLoader`` yields (its sampler's length, none dropped), else ``None``."""
    sampler = getattr(loader, "sampler", None)
    if not isinstance(loader, torch.utils.data.DataLoader) or getattr(loader, "drop_last", False):
        return None
    try:
        return len(sampler) if sampler is not None else None
    except TypeError:  # an iterable-style dataset's sampler has no length
        return None


def evaluate(model: nn.Module, criterion: nn.Module, loader: Iterable, device: torch.device, *,
             precision: Precision, channels_last: bool = False, progress: bool = False) -> dict[str, float]:
    """Loss and accuracy of ``model`` on ``loader`` (under ``torch.inference_mode``)."""
    start = time.perf_counter()
    logits, targets = predict_logits(model, loader, device, precision=precision, channels_last=channels_last,
                                     progress=progress, desc="validate")
    if len(targets) == 0:
        return {"loss": math.nan, "accuracy": math.nan, "images": 0, "seconds": 0.0}
    logits_t, targets_t = torch.from_numpy(logits), torch.from_numpy(targets).long()
    loss = criterion(logits_t, targets_t).item()
    accuracy = (logits_t.argmax(1) == targets_t).float().mean().item()
    return {"loss": loss, "accuracy": accuracy, "images": len(targets),
            "seconds": time.perf_counter() - start}


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int,
                  warmup_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up then cosine decay, per step, from torch's own schedulers. Each param group keeps its own
    base rate, so the ratios between head and backbone blocks hold across the schedule."""
    total_steps = max(total_steps, 1)
    warmup_steps = min(max(warmup_steps, 0), total_steps - 1)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup_steps, 1))
    if warmup_steps == 0:
        return cosine
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / (warmup_steps + 1), total_iters=warmup_steps)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


def set_epoch_seed(seed: int, epoch: int) -> torch.Generator:
    """Seeds every random source from (seed, epoch) alone, so a resumed run replays an uninterrupted one."""
    torch.manual_seed(seed * 1000 + epoch)
    np.random.seed((seed * 1000 + epoch) % 2**32)
    random.seed(seed * 1000 + epoch)  # torchvision's and timm's transforms draw from Python's own generator too
    return torch.Generator().manual_seed(seed * 1000 + epoch)
