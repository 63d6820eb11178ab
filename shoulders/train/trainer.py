"""Orchestrates one training run: resolves its context, then takes the road its strategy names.

Plain functions with their dependencies as arguments. A strategy's ``road`` names the procedure that trains it
(:data:`ROADS`): ``phases`` (``finetune``: epochs of the strategy's phases, best weights, early stopping,
checkpoints) or ``features`` (``frozen``: the backbone's features once, then the head alone on them). The
trainer calls the road; it never branches on what kind of strategy it holds.

Under a launcher (``torchrun`` / ``accelerate launch``, see ``distributed`` and ``run``) the same functions run in
every process; ``batch_size`` is the global batch.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import torch
from timm.layers import convert_sync_batchnorm
from torch import nn

from .._registry import Registry
from ..config import RunConfig
from ..data import DataSplits, create_transforms
from ..models import TransferModel
from ..strategies import Strategy
from .device import Precision
from .distributed import DistContext, init_distributed
from .finetune import fit_phases
from .frozen import fit_on_features
from .imbalance import resolve_class_weight
from .run import FitResult, RunContext

Road = Callable[[RunContext, bool], FitResult]
ROADS: Registry[Road] = Registry("training road", "a strategy's `road` names one of these")
ROADS.register("phases", fit_phases)
ROADS.register("features", fit_on_features)


def fit(model: TransferModel, strategy: Strategy, splits: DataSplits, config: RunConfig, data_config: dict[str, Any],
        *, run_dir: str | Path | None = None, resume: bool = False,
        cache_identity: dict[str, Any] | None = None, deadline: float | None = None,
        stretch: float = 1.0) -> FitResult:
    """Trains ``model`` (a ``TransferModel``) in place with ``strategy`` and returns history and metrics.

    Args:
        model: backbone + new head; left holding the best weights on validation accuracy.
        strategy: which blocks train in which phase, and the BatchNorm policy.
        splits: train / val (/ test) samples.
        config: the resolved run configuration (no ``None`` left for epochs, lr, augment).
        data_config: the backbone's preprocessing (``resolve_data_config``).
        run_dir: where epoch checkpoints and ``history.csv`` go; ``None`` keeps everything in memory.
        resume: continue from ``run_dir``'s checkpoint.
        cache_identity: what identifies the backbone's features (name, weights hash, preprocessing); enables the
            on-disk feature cache of the frozen strategy.
        deadline: ``time.perf_counter()`` value by which training must end (the planner's budget): the schedule
            is re-laid over fewer steps when the measured speed falls behind; ``None`` = the planned epochs.
        stretch: with a deadline, up to this many times the planned steps when the measured speed is ahead
            (1 = never longer than planned: the user fixed the epochs).
    """
    start = time.perf_counter()
    ctx = init_distributed(config.train.device)
    _check_parallel_settings(config, ctx)
    device = ctx.device
    precision = Precision(train=config.train.precision, inference=config.train.inference_precision)
    model.to(device)
    if config.train.channels_last:
        model.to(memory_format=torch.channels_last)
    if config.train.sync_bn and ctx.distributed:
        convert_sync_batchnorm(model)  # timm's: keeps BatchNormAct2d's activation; same parameters, same keys
    train_tf, eval_tf = create_transforms(data_config, augment=config.data.augment, hflip=config.data.hflip)
    weights = resolve_class_weight(config.train.class_weight, splits.train.labels, len(splits.classes)).weights
    loss_weight = None if weights is None else torch.tensor(weights, dtype=torch.float32, device=device)
    run = RunContext(model, strategy, splits, config, device, precision, train_tf, eval_tf,
                     nn.CrossEntropyLoss(label_smoothing=config.train.label_smoothing),
                     Path(run_dir) if run_dir is not None else None, ctx, cache_identity, deadline, weights,
                     nn.CrossEntropyLoss(weight=loss_weight, label_smoothing=config.train.label_smoothing),
                     stretch=stretch)
    result = ROADS.get(strategy.road)(run, resume)
    # what ran it (the settings themselves are the resolved config's, recorded once there)
    result.runtime.update({"device": str(device), "threads": torch.get_num_threads(),
                           "world_size": ctx.world_size, "backend": ctx.backend,
                           "batch_size_per_process": config.data.batch_size // ctx.world_size,
                           "sync_bn": bool(config.train.sync_bn and ctx.distributed),
                           "seconds": round(time.perf_counter() - start, 2)})
    return result


def _check_parallel_settings(config: RunConfig, ctx: DistContext) -> None:
    batch, world = config.data.batch_size, ctx.world_size
    if batch % world:
        lower, upper = max(world, batch // world * world), (batch // world + 1) * world
        raise ValueError(f"batch_size={batch} is the global batch and must split evenly over the {world} "
                         f"processes; use batch_size={lower} or batch_size={upper}")
    if config.train.sync_bn and not config.strategy.train_bn:
        raise ValueError("sync_bn=True synchronises the batch statistics of BatchNorm layers that train; with frozen "
                         "BatchNorm (the default) there are none: set train_bn=True or sync_bn=False")
    if config.train.sync_bn and ctx.distributed and ctx.device.type != "cuda":
        raise ValueError("sync_bn=True needs CUDA GPUs (PyTorch's SyncBatchNorm has no CPU kernel); set "
                         "sync_bn=False on the CPU")
