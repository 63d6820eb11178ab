"""The state of a training run, as one typed value: what ``--resume`` restores and the checkpoint holds.

Each epoch's bookkeeping is a small function of its own: :func:`history_row`, :func:`keep_if_best`,
:func:`count_for_early_stopping`, :func:`print_epoch`; :func:`record_epoch` runs them in order.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state


# Which epoch's weights a run keeps: the latest whose validation accuracy is within KEEP_WITHIN_SE binomial standard
# errors of the best one so far. A small validation split cannot tell neighbouring epochs apart, and picking its
# maximum favours early epochs by chance (with ties to the lower loss, the least confident, i.e. earliest):
# benchmarks/checkpoint_rule.py, partial top-4 at 64 px — see benchmarks/README.md "Which epoch to keep".
KEEP_WITHIN_SE = 3.0


@dataclass
class BestEpoch:
    """The epoch whose weights are kept (see KEEP_WITHIN_SE)."""

    val_accuracy: float = -1.0
    val_loss: float = math.inf
    epoch: int = 0
    val_images: int | None = None


@dataclass
class TrainingState:
    """Where a run is, and everything it has learnt so far about its epochs."""

    epoch: int = 0  # epochs finished, over all phases
    phase_index: int = 0  # the phase being trained
    phase_epoch: int = 0  # epochs finished in that phase
    history: list[dict[str, Any]] = field(default_factory=list)
    phases: list[dict[str, Any]] = field(default_factory=list)  # which blocks each phase trained
    stopped: bool = False  # early stopping fired
    best: BestEpoch = field(default_factory=BestEpoch)
    since_improved: int = 0  # epochs since the validation loss last improved (early stopping)
    best_val_loss: float = math.inf
    top_val_accuracy: float = -1.0  # the best validation accuracy of any epoch so far (the kept one may be lower)
    best_weights: dict[str, torch.Tensor] | None = None  # CPU copy of the kept epoch's model (keep_if_best)
    optimizer: dict[str, Any] | None = None  # restored from a checkpoint, consumed by the phase it belongs to
    scheduler: dict[str, Any] | None = None

    def metrics(self) -> dict[str, Any]:
        """The run's figures on validation (the kept epoch's) and how many epochs ran."""
        return {"val_accuracy": self.best.val_accuracy, "val_loss": self.best.val_loss,
                "val_images": self.best.val_images, "best_epoch": self.best.epoch,
                "epochs_run": len(self.history), "early_stopped": self.stopped}

    def save(self, path: Path, model: nn.Module, optimizer: Any, scheduler: Any, config: dict[str, Any]) -> None:
        """The checkpoint is this state, with the model, optimizer and scheduler at the end of the epoch and the
        random generators' states (so that the resumed run replays the uninterrupted one)."""
        progress = {k: v for k, v in asdict(self).items() if k not in ("best_weights", "optimizer", "scheduler")}
        save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "best_state": self.best_weights,
                         "state": copy.deepcopy(progress), "rng": rng_state(), "config": config}, path)

    @classmethod
    def resume(cls, path: Path, model: nn.Module) -> "TrainingState":
        """The state a checkpoint holds; ``model`` and the random generators are set back to it."""
        ckpt = load_checkpoint(path)
        missing = [k for k in CHECKPOINT_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
        if missing:
            raise ValueError(f"{path} is not a shoulders checkpoint (it lacks {', '.join(missing)}); delete it and "
                             "train without resume=True, or resume the run folder it belongs to")
        try:
            model.load_state_dict(ckpt["model"])
            progress = dict(ckpt["state"])
            progress["best"] = BestEpoch(**progress["best"])
            progress.setdefault("top_val_accuracy", progress["best"].val_accuracy)  # a checkpoint from before it
            state = cls(**progress, best_weights=ckpt["best_state"], optimizer=ckpt["optimizer"],
                        scheduler=ckpt["scheduler"])
        except (RuntimeError, TypeError, KeyError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{path} belongs to another model or version ({first[:200]}); resume with the "
                             "settings the run was started with, or train without resume=True") from None
        set_rng_state(ckpt["rng"])
        return state


CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "best_state", "state", "rng")


def history_row(epoch: int, phase: str, lr: float, train: dict[str, float], val: dict[str, float]) -> dict[str, Any]:
    """One line of ``history.csv``."""
    return {"epoch": epoch, "phase": phase, "lr": lr, "train_loss": train["loss"], "train_accuracy": train["accuracy"],
            "val_loss": val["loss"], "val_accuracy": val["accuracy"], "seconds": train["seconds"] + val["seconds"]}


def keep_tolerance(top: float, images: int | None, k: float = KEEP_WITHIN_SE) -> float:
    """``k`` standard errors of a validation accuracy ``top`` on ``images`` images; a standard error is at least half
    an image's worth, so that after a perfect score an epoch may be 1.5 images worse (at k = 3)."""
    n = max(int(images or 0), 1)
    return k * math.sqrt(max(top * (1 - top), 0.25 / n) / n)


def keep_if_best(state: TrainingState, epoch: int, val: dict[str, float], model: nn.Module) -> None:
    """Keeps a CPU copy of ``model`` when this epoch's validation accuracy is within the tolerance of the best so
    far (:data:`KEEP_WITHIN_SE`): later epochs, further down the learning-rate decay, win what the split cannot
    separate."""
    accuracy = val["accuracy"]
    if math.isfinite(accuracy):
        state.top_val_accuracy = top = max(state.top_val_accuracy, accuracy)
    if not math.isfinite(accuracy) or accuracy >= top - keep_tolerance(top, val.get("images")):  # no split: latest
        state.best = BestEpoch(val["accuracy"], val["loss"], epoch, val.get("images"))
        state.best_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def count_for_early_stopping(state: TrainingState, val_loss: float, patience: int | None) -> None:
    """Stops after ``patience`` epochs without a lower validation loss (``None``: never)."""
    if val_loss < state.best_val_loss:
        state.best_val_loss, state.since_improved = val_loss, 0
    else:
        state.since_improved += 1
    state.stopped = bool(patience is not None and state.since_improved >= patience)


def print_epoch(row: dict[str, Any]) -> None:
    print(f"epoch {row['epoch']:>3} {row['phase']:<8} train loss {row['train_loss']:.4f} "
          f"acc {row['train_accuracy']:.3f} | val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.3f} | "
          f"{row['seconds']:.1f}s", flush=True)


def record_epoch(state: TrainingState, model: nn.Module, row: dict[str, Any], val: dict[str, float],
                 patience: int | None) -> None:
    """Appends the epoch's row, keeps its weights if :func:`keep_if_best` says so, counts for early stopping and
    moves the state on."""
    state.history.append(row)
    keep_if_best(state, row["epoch"], val, model)
    count_for_early_stopping(state, val["loss"], patience)
    state.epoch, state.phase_epoch = row["epoch"], state.phase_epoch + 1
