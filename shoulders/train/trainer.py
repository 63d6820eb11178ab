"""Orchestrates one training run: phases of a strategy, validation, best model, early stopping, checkpoints.

Plain functions with their dependencies as arguments. The frozen strategy takes a different road: features once,
then the head alone on the cached features (seconds), through the same loop or the convex solver.

Under a launcher (``torchrun`` / ``accelerate launch``, see ``distributed``) the same functions run in every
process: training batches are sharded by a ``DistributedSampler`` and gradients averaged by DDP; validation is
sharded without duplicates and its sums reduced, so every process takes the same best-model and early-stopping
decisions; the frozen strategy's features are extracted shard by shard and gathered once on rank 0, which alone
reads and writes the feature cache, fits the head and writes files. ``batch_size`` is the global batch.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import RunConfig
from timm.layers import convert_sync_batchnorm
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from ..data import DataSplits, ImageDataset, create_transforms, make_loader
from ..data.loader import default_num_workers
from ..strategies import Phase, Strategy, backbone_blocks
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .device import Precision, resolve_precision
from .distributed import (DistContext, ShardSampler, all_reduce_sum, barrier, broadcast_object, gather_shards,
                          init_distributed, is_main, shard_indices)
from .features import FeatureCache, default_cache_dir, extract_features
from .head_solver import fit_linear_head
from .history import write_history
from .loop import evaluate, set_epoch_seed, train_one_epoch, warmup_cosine

FEATURE_BATCH = 256  # head-on-features batches: the work per step is tiny, so large batches
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
class _Run:
    """The resolved pieces every step of a run needs."""

    model: nn.Module
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
        workers = self.config.data.num_workers
        if workers is None:  # the machine's spare cores are shared by the processes running on it
            workers = default_num_workers(self.device) // self.dist.local_world_size
        return make_loader(dataset, self.config.data.batch_size // world, shuffle=False, sampler=sampler,
                           seed=self.config.train.seed, device=self.device, num_workers=workers)

    def evaluate(self, model: nn.Module, loader: Any) -> dict[str, float]:
        """Loss and accuracy of this process's shard, reduced to the whole split's."""
        return _whole_split(evaluate(model, self.criterion, loader, self.device, precision=self.precision,
                                     channels_last=self.config.train.channels_last))

    def parallel(self, model: nn.Module) -> nn.Module:
        """DDP over the current phase's trainable parameters (rebuilt each phase); the model itself alone."""
        if not self.dist.distributed:
            return model
        # buffers (BatchNorm statistics) are broadcast from rank 0 at every forward, as in torchvision's recipe:
        # trained BatchNorm without --sync-bn then still ends identical on every process
        return DistributedDataParallel(model, device_ids=[self.device] if self.device.type == "cuda" else None)


def fit(model: nn.Module, strategy: Strategy, splits: DataSplits, config: RunConfig, data_config: dict[str, Any],
        *, run_dir: str | Path | None = None, resume: bool = False,
        cache_identity: dict[str, Any] | None = None) -> FitResult:
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
    """
    start = time.perf_counter()
    ctx = init_distributed(config.train.device)
    _check_parallel_settings(config, ctx)
    device = ctx.device
    precision = resolve_precision(config.train.precision, device, fixed_features=strategy.uses_feature_cache)
    model.to(device)
    if config.train.channels_last:
        model.to(memory_format=torch.channels_last)
    if config.train.sync_bn and ctx.distributed:
        convert_sync_batchnorm(model)  # timm's: keeps BatchNormAct2d's activation; same parameters, same keys
    train_tf, eval_tf = create_transforms(data_config, augment=config.data.augment or "none", hflip=config.data.hflip)
    run = _Run(model, strategy, splits, config, device, precision, train_tf, eval_tf,
               nn.CrossEntropyLoss(label_smoothing=config.train.label_smoothing),
               Path(run_dir) if run_dir is not None else None, ctx)
    if strategy.uses_feature_cache:
        if resume and is_main():  # nothing epoch-shaped to continue: say what a rerun reuses instead
            print("resume: the frozen strategy has no epochs to continue; it starts again, and features of the "
                  "splits finished before the interruption come from the feature cache", file=sys.stderr, flush=True)
        result = _fit_on_features(run, cache_identity)
    else:
        result = _fit_phases(run, resume)
    result.runtime.update({"device": str(device), "precision": vars(precision),
                           "channels_last": config.train.channels_last, "threads": torch.get_num_threads(),
                           "world_size": ctx.world_size, "backend": ctx.backend,
                           "batch_size_per_process": config.data.batch_size // ctx.world_size,
                           "sync_bn": bool(config.train.sync_bn and ctx.distributed),
                           "seconds": round(time.perf_counter() - start, 2)})
    return result


def _check_parallel_settings(config: RunConfig, ctx: DistContext) -> None:
    batch, world = config.data.batch_size, ctx.world_size
    if batch % world:
        lower, upper = max(world, batch // world * world), (batch // world + 1) * world
        raise ValueError(f"--batch-size is the global batch and must split evenly over the {world} processes; "
                         f"{batch} does not: use {lower} or {upper}")
    if config.train.sync_bn and not config.strategy.train_bn:
        raise ValueError("--sync-bn synchronises the batch statistics of BatchNorm layers that train; with frozen "
                         "BatchNorm (the default) there are none: add --train-bn or drop --sync-bn")
    if config.train.sync_bn and ctx.distributed and ctx.device.type != "cuda":
        raise ValueError("--sync-bn needs CUDA GPUs (PyTorch's SyncBatchNorm has no CPU kernel); drop it on the CPU")


def _whole_split(part: dict[str, float]) -> dict[str, float]:
    """One process's loss / accuracy / image count → the whole split's, from sums over every process."""
    n = part["images"]
    loss_sum, correct, count = all_reduce_sum([part["loss"] * n if n else 0.0, part["accuracy"] * n if n else 0.0, n])
    if not count:
        return {**part, "images": 0}
    return {**part, "loss": loss_sum / count, "accuracy": round(correct) / count, "images": int(count)}


def _seed(run: _Run, epoch: int) -> int:
    """Seeds every random source from (seed, epoch, rank), so a resumed run replays an uninterrupted one and each
    process draws its own augmentations and dropout masks (rank 0 exactly as a single-process run)."""
    return set_epoch_seed(run.config.train.seed + RANK_SEED_STRIDE * run.dist.rank, epoch).initial_seed()


# -- fine-tuning (full / partial) ---------------------------------------------------------------------------------
def _fit_phases(run: _Run, resume: bool) -> FitResult:
    cfg = run.config.train
    _, blocks = backbone_blocks(run.model.backbone)
    phases = run.strategy.phases(cfg.epochs, len(blocks))
    train_loader = run.loader(run.splits.train, run.train_tf, train=True)
    val_loader = run.loader(run.splits.val, run.eval_tf, train=False)
    state = _initial_state(run, resume)
    for phase_index, phase in enumerate(phases):
        if phase_index < state["phase_index"] or phase.epochs == 0:
            continue
        phase_info = run.strategy.apply_phase(run.model, phase)
        if phase_index >= len(state["phases"]):
            state["phases"].append(phase_info)
        net = run.parallel(run.model)  # after apply_phase: DDP registers exactly the parameters that now train
        optimizer, scheduler, scaler = _optimizer(run, phase, len(train_loader))
        if state.get("optimizer") is not None and phase_index == state["phase_index"]:
            optimizer.load_state_dict(state.pop("optimizer"))
            scheduler.load_state_dict(state.pop("scheduler"))
        while state["phase_epoch"] < phase.epochs and not state["stopped"]:
            _run_epoch(run, phase, optimizer, scheduler, scaler, train_loader, val_loader, state, net=net)
            if run.run_dir is not None:
                if run.dist.is_main:
                    _checkpoint(run, state, phase_index, optimizer, scheduler)
                barrier()  # an interruption after this epoch always finds its checkpoint on disk
        state["phase_index"], state["phase_epoch"] = phase_index + 1, 0
    run.model.load_state_dict(state["best_state"])
    metrics = {"val_accuracy": state["best"]["val_accuracy"], "val_loss": state["best"]["val_loss"],
               "val_images": state["best"].get("val_images"), "best_epoch": state["best"]["epoch"],
               "epochs_run": len(state["history"]), "early_stopped": state["stopped"]}
    _test_metrics(run, metrics)
    return FitResult(state["history"], metrics, state["phases"], {})


def _initial_state(run: _Run, resume: bool) -> dict[str, Any]:
    if resume:
        if run.run_dir is None:
            raise ValueError("resume needs a run folder (--out) holding a checkpoint")
        ckpt = load_checkpoint(run.run_dir / CHECKPOINT_NAME)
        run.model.load_state_dict(ckpt["model"])
        set_rng_state(ckpt["rng"])
        state = ckpt["state"]
        state.update(optimizer=ckpt["optimizer"], scheduler=ckpt["scheduler"], best_state=ckpt["best_state"])
        return state
    return {"epoch": 0, "phase_index": 0, "phase_epoch": 0, "history": [], "phases": [], "stopped": False,
            "best": {"val_accuracy": -1.0, "val_loss": math.inf, "epoch": 0}, "best_state": None,
            "since_improved": 0, "best_val_loss": math.inf}


def _optimizer(run: _Run, phase: Phase, steps_per_epoch: int) -> tuple[Any, Any, Any]:
    cfg = run.config.train
    groups = run.strategy.param_groups(run.model, cfg.lr, cfg.backbone_lr_mult, cfg.layer_decay, cfg.weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    total = phase.epochs * steps_per_epoch
    scheduler = warmup_cosine(optimizer, total, round(cfg.warmup_epochs * steps_per_epoch))
    scaler = torch.amp.GradScaler(run.device.type) if run.precision.needs_grad_scaler else None
    return optimizer, scheduler, scaler


def _run_epoch(run: _Run, phase: Phase, optimizer: Any, scheduler: Any, scaler: Any, train_loader: Any,
               val_loader: Any, state: dict[str, Any], *, net: nn.Module | None = None) -> None:
    """One epoch: ``net`` (the model, or its DDP wrapper) trains; the model itself is validated."""
    cfg = run.config.train
    epoch = state["epoch"]
    train_loader.sampler.set_epoch(epoch)  # the epoch's permutation, the same on every process
    train_loader.generator.manual_seed(_seed(run, epoch))  # this process's augmentation and worker seeds
    run.strategy.set_train_mode(run.model)
    lr = optimizer.param_groups[0]["lr"]
    train = train_one_epoch(net or run.model, run.criterion, optimizer, train_loader, run.device, epoch=epoch,
                            precision=run.precision, scheduler=scheduler, scaler=scaler,
                            channels_last=cfg.channels_last, progress=run.progress, desc=phase.name)
    val = run.evaluate(run.model, val_loader)
    _record(run, state, phase.name, lr, _whole_split(train), val)


def _record(run: _Run, state: dict[str, Any], phase: str, lr: float, train: dict[str, float],
            val: dict[str, float]) -> None:
    """Appends the epoch to the history, keeps the best weights, and applies early stopping."""
    epoch = state["epoch"] + 1
    row = {"epoch": epoch, "phase": phase, "lr": lr, "train_loss": train["loss"], "train_accuracy": train["accuracy"],
           "val_loss": val["loss"], "val_accuracy": val["accuracy"], "seconds": train["seconds"] + val["seconds"]}
    state["history"].append(row)
    best = state["best"]
    if (val["accuracy"], -val["loss"]) > (best["val_accuracy"], -best["val_loss"]):
        state["best"] = {"val_accuracy": val["accuracy"], "val_loss": val["loss"], "epoch": epoch,
                         "val_images": val.get("images")}
        state["best_state"] = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
    if val["loss"] < state["best_val_loss"]:
        state["best_val_loss"], state["since_improved"] = val["loss"], 0
    else:
        state["since_improved"] += 1
    patience = run.config.train.patience
    state["stopped"] = bool(patience is not None and state["since_improved"] >= patience)
    state["epoch"], state["phase_epoch"] = epoch, state["phase_epoch"] + 1
    if run.config.train.progress and is_main():
        print(f"epoch {epoch:>3} {phase:<8} train loss {train['loss']:.4f} acc {train['accuracy']:.3f} | "
              f"val loss {val['loss']:.4f} acc {val['accuracy']:.3f} | {row['seconds']:.1f}s", flush=True)
    if run.run_dir is not None and is_main():
        write_history(run.run_dir, state["history"])


def _checkpoint(run: _Run, state: dict[str, Any], phase_index: int, optimizer: Any, scheduler: Any) -> None:
    saved = {k: v for k, v in state.items() if k not in ("best_state", "optimizer", "scheduler")}
    saved["phase_index"] = phase_index
    save_checkpoint({"model": run.model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "best_state": state["best_state"], "state": copy.deepcopy(saved),
                     "rng": rng_state(), "config": run.config.to_dict()}, run.run_dir / CHECKPOINT_NAME)


def _test_metrics(run: _Run, metrics: dict[str, Any]) -> None:
    if run.splits.test is not None and len(run.splits.test):
        test = run.evaluate(run.model, run.loader(run.splits.test, run.eval_tf, train=False))
        metrics.update(test_accuracy=test["accuracy"], test_loss=test["loss"], test_images=test["images"])


# -- frozen base: the head on cached features ------------------------------------------------------------------
def _fit_on_features(run: _Run, cache_identity: dict[str, Any] | None) -> FitResult:
    """Every process extracts its shard of the features; rank 0 gathers them, fits the head and sends it out."""
    cfg, scfg = run.config.train, run.config.strategy
    phase_info = run.strategy.apply_phase(run.model, Phase("head", cfg.epochs, 0))
    cache = FeatureCache(default_cache_dir() / "features") if cfg.feature_cache and cache_identity else None
    views = scfg.feature_views if (run.config.data.augment or "none") != "none" else 1
    train = _features(run, cache, cache_identity, run.splits.train, views)
    val = _features(run, cache, cache_identity, run.splits.val, 1)
    has_test = run.splits.test is not None and len(run.splits.test) > 0
    test = _features(run, cache, cache_identity, run.splits.test, 1) if has_test else None
    outcome = None
    if run.dist.is_main:
        history, metrics = _fit_head(run, train, val)
        if test is not None:
            scores = _head_eval(run, *test)
            metrics.update(test_accuracy=scores["accuracy"], test_loss=scores["loss"], test_images=scores["images"])
        if run.run_dir is not None:
            write_history(run.run_dir, history)
        head_state = {k: v.detach().cpu() for k, v in run.model.head.state_dict().items()}
        cache_stats = {"hits": cache.hits, "misses": cache.misses} if cache else {}
        outcome = (history, metrics, head_state, cache_stats)
    history, metrics, head_state, cache_stats = broadcast_object(outcome)
    run.model.head.load_state_dict(head_state)
    return FitResult(history, metrics, [phase_info], {"feature_views": views}, cache_stats)


def _fit_head(run: _Run, train: tuple[np.ndarray, np.ndarray],
              val: tuple[np.ndarray, np.ndarray]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The new head on the features, with the convex solver or the SGD loop (one process)."""
    cfg, scfg = run.config.train, run.config.strategy
    head = run.model.head
    solver = scfg.head_solver or ("lbfgs" if isinstance(head, nn.Linear) else "sgd")
    if solver == "lbfgs":
        if not isinstance(head, nn.Linear):
            raise ValueError("head_solver 'lbfgs' needs a linear head; drop --head-hidden or use --head-solver sgd")
        rows = fit_linear_head(head, *train, *val, len(run.splits.classes), seed=cfg.seed)
        history = [{"epoch": i + 1, "phase": "head", "lr": math.nan, "train_loss": math.nan,
                    "train_accuracy": r["train_accuracy"], "val_loss": r["val_loss"],
                    "val_accuracy": r["val_accuracy"], "seconds": r["seconds"], "C": r["C"],
                    "train_images": r["train_images"]} for i, r in enumerate(rows)]
        best = next(r for r in rows if r.get("chosen"))  # the exported head's row
        metrics = {"val_accuracy": best["val_accuracy"], "val_loss": best["val_loss"], "val_images": len(val[1]),
                   "head_C": best["C"]}
    elif solver == "sgd":
        history, metrics = _fit_head_sgd(run, *train, *val)
    else:
        raise ValueError(f"unknown head_solver {solver!r}; choose lbfgs or sgd")
    metrics["head_solver"] = solver
    return history, metrics


def _features(run: _Run, cache: FeatureCache | None, identity: dict[str, Any] | None, samples: Any,
              views: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Features and labels of ``samples`` on rank 0 (``None`` elsewhere): one eval-transform view, or ``views``
    augmented views stacked. Each process fingerprints and extracts its shard; rank 0 gathers them once and alone
    reads and writes the disk cache."""
    cfg = run.config.train
    shard = shard_indices(len(samples), run.dist)
    fingerprints = gather_shards([samples.fingerprint(i) for i in shard], len(samples)) if cache else None
    out = []
    for view in range(views):
        transform = run.eval_tf if views == 1 else run.train_tf
        key = {**(identity or {}), "precision": run.precision.inference, "view": view,
               "augment": run.config.data.augment if views > 1 else "none", "seed": cfg.seed if views > 1 else 0}
        entry = cache.key(key, fingerprints) if cache and run.dist.is_main else None
        feats = cache.get(entry) if entry else None
        if not broadcast_object(feats is not None):  # every process learns whether the backbone must run
            _seed(run, view)
            local, _ = extract_features(run.model.backbone, run.loader(samples, transform, train=False), run.device,
                                        precision=run.precision, channels_last=cfg.channels_last,
                                        progress=run.progress,
                                        desc=f"features {view + 1}/{views}" if views > 1 else "features")
            feats = gather_shards(local, len(samples))
            if entry:
                cache.put(entry, feats)
        out.append(feats)
    if not run.dist.is_main:
        return None
    return np.concatenate(out), np.tile(np.asarray(samples.labels, dtype=np.int64), views)


def _head_eval(run: _Run, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                         batch_size=FEATURE_BATCH)
    head_precision = Precision(train="fp32", inference="fp32")  # the head is tiny: no reason to lose precision
    return evaluate(run.model.head, run.criterion, loader, run.device, precision=head_precision)


def _fit_head_sgd(run: _Run, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
                  val_y: np.ndarray) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    cfg = run.config.train
    head = run.model.head
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(train_x), torch.from_numpy(train_y))
    generator = torch.Generator()
    loader = torch.utils.data.DataLoader(dataset, batch_size=FEATURE_BATCH, shuffle=True, generator=generator)
    optimizer = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = warmup_cosine(optimizer, cfg.epochs * len(loader), round(cfg.warmup_epochs * len(loader)))
    state = _initial_state(run, resume=False)
    fp32 = Precision(train="fp32", inference="fp32")
    for epoch in range(cfg.epochs):
        generator.manual_seed(set_epoch_seed(cfg.seed, epoch).initial_seed())
        head.train()
        lr = optimizer.param_groups[0]["lr"]
        train = train_one_epoch(head, run.criterion, optimizer, loader, run.device, epoch=epoch, precision=fp32,
                                scheduler=scheduler, progress=False, desc="head")
        val = _head_eval(run, val_x, val_y)
        _record(run, state, "head", lr, train, val)
        if state["stopped"]:
            break
    run.model.load_state_dict(state["best_state"])
    best = state["best"]
    return state["history"], {"val_accuracy": best["val_accuracy"], "val_loss": best["val_loss"],
                              "val_images": best.get("val_images"), "best_epoch": best["epoch"],
                              "epochs_run": len(state["history"])}
