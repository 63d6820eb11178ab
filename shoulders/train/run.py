"""The context of one training run: the resolved pieces every road's functions need, and what a run returns.

Under a launcher (``torchrun`` / ``accelerate launch``, see ``distributed``) the same functions run in every
process: training batches are sharded by a ``DistributedSampler`` and gradients averaged by DDP; validation is
sharded without duplicates and its sums reduced (:func:`whole_split`), so every process takes the same best-model
and early-stopping decisions. ``batch_size`` is the global batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from ..config import RunConfig
from ..data import DataSplits, ImageDataset, make_loader
from ..models import TransferModel
from ..run_folder import write_history
from ..strategies import Strategy
from .device import Precision
from .distributed import DistContext, ShardSampler, all_reduce_sum
from .loop import evaluate, set_epoch_seed
from .state import print_epoch

RANK_SEED_STRIDE = 1_000_003  # rank r seeds its augmentations and dropout from seed + r × this (rank 0: as alone)


@dataclass
class FitResult:
    """What a run produced, besides the trained model (which is updated in place)."""

    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    phases: list[dict[str, Any]]
    runtime: dict[str, Any]
    cache: dict[str, int] = field(default_factory=dict)


@dataclass
class RunContext:
    """The resolved pieces every step of a run needs (each road's functions take it as their one dependency)."""

    model: TransferModel
    strategy: Strategy
    splits: DataSplits
    config: RunConfig
    device: torch.device
    precision: Precision
    train_tf: Any
    eval_tf: Any
    criterion: nn.Module
    run_dir: Path | None
    dist: DistContext
    cache_identity: dict[str, Any] | None = None  # what identifies the backbone's features (the feature cache's key)
    deadline: float | None = None  # perf_counter() by which training must end (the budget); None = no limit
    class_weight: tuple[float, ...] | None = None  # per-class loss weights (config.train.class_weight), or none
    train_criterion: nn.Module | None = None  # the training loss (weighted by class_weight); None = criterion
    stretch: float = 1.0  # with a deadline: how much longer than planned the schedule may grow when steps run faster

    @property
    def loss(self) -> nn.Module:
        """The training loss: class-weighted when ``class_weight`` is set; validation and test stay unweighted."""
        return self.train_criterion if self.train_criterion is not None else self.criterion

    @property
    def progress(self) -> bool:
        """Bars and per-epoch lines: on rank 0 only."""
        return self.config.train.progress and self.dist.is_main

    def loader(self, samples: Any, transform: Any, *, train: bool) -> Any:
        """This process's loader: a seeded, padded shard of a global permutation for training (the global batch
        of step k is the same set of images at any world size); a strided shard without duplicates otherwise."""
        dataset = ImageDataset(samples, transform)
        world, rank = self.dist.world_size, self.dist.rank
        sampler = (DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                      seed=self.config.train.seed * 1000) if train
                   else ShardSampler(len(dataset), self.dist))
        return make_loader(dataset, self.config.data.batch_size // world, shuffle=False, sampler=sampler,
                           seed=self.config.train.seed, device=self.device, num_workers=self.config.data.num_workers)

    def evaluate(self, model: nn.Module, loader: Any) -> dict[str, float]:
        """Loss and accuracy of this process's shard, reduced to the whole split's."""
        return whole_split(evaluate(model, self.criterion, loader, self.device, precision=self.precision,
                                     channels_last=self.config.train.channels_last))

    def report_epoch(self, history: list[dict[str, Any]]) -> None:
        """The last epoch's line on the terminal and ``history.csv`` rewritten (rank 0 only)."""
        if not self.dist.is_main:
            return
        if self.config.train.progress:
            print_epoch(history[-1])
        if self.run_dir is not None:
            write_history(self.run_dir, history)

    def parallel(self, model: nn.Module) -> nn.Module:
        """DDP over the current phase's trainable parameters (rebuilt each phase); the model itself alone."""
        if not self.dist.distributed:
            return model
        # buffers (BatchNorm statistics) are broadcast from rank 0 at every forward, as in torchvision's recipe:
        # trained BatchNorm without --sync-bn then still ends identical on every process
        return DistributedDataParallel(model, device_ids=[self.device] if self.device.type == "cuda" else None)


def whole_split(part: dict[str, float]) -> dict[str, float]:
    """One process's loss / accuracy / image count → the whole split's, from sums over every process."""
    n = part["images"]
    loss_sum, correct, count = all_reduce_sum([part["loss"] * n if n else 0.0, part["accuracy"] * n if n else 0.0, n])
    if not count:
        return {**part, "images": 0}
    return {**part, "loss": loss_sum / count, "accuracy": round(correct) / count, "images": int(count)}


def seed_epoch(run: RunContext, epoch: int) -> int:
    """Seeds every random source from (seed, epoch, rank), so a resumed run replays an uninterrupted one and each
    process draws its own augmentations and dropout masks (rank 0 exactly as a single-process run)."""
    return set_epoch_seed(run.config.train.seed + RANK_SEED_STRIDE * run.dist.rank, epoch).initial_seed()
