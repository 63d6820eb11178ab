"""The frozen strategy's road: the backbone's features once (cached on disk), then the head alone on them.

The strategy's ``road`` is ``"features"``. The base never trains, so each image's pooled features are computed
once per run (or read from the content-keyed cache) and the head is fitted on them in seconds, by the convex
solver or the epoch loop (``head_solver``). Under a launcher the features are extracted shard by shard and
gathered once on rank 0, which alone reads and writes the feature cache, fits the head and sends it out.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import torch

from ..run_folder import write_history
from ..strategies import Phase
from .device import Precision
from .distributed import broadcast_object, gather_shards, shard_indices
from .features import FeatureCache, extract_features, feature_cache_dir
from .head_solver import fit_linear_head
from .loop import evaluate, set_epoch_seed, train_one_epoch, warmup_cosine
from .run import FitResult, RunContext, seed_epoch
from .state import TrainingState, history_row, record_epoch

FEATURE_BATCH = 256  # head-on-features batches: the work per step is tiny, so large batches


def fit_on_features(run: RunContext, resume: bool) -> FitResult:
    """Every process extracts its shard of the features; rank 0 gathers them, fits the head and sends it out."""
    if resume and run.dist.is_main:  # nothing epoch-shaped to continue: say what a rerun reuses instead
        print("resume: the frozen strategy has no epochs to continue; it starts again, and features of the "
              "splits finished before the interruption come from the feature cache", file=sys.stderr, flush=True)
    cfg, scfg, cache_identity = run.config.train, run.config.strategy, run.cache_identity
    phase_info = run.strategy.apply_phase(run.model, Phase("head", cfg.epochs, 0))
    cache = FeatureCache(feature_cache_dir()) if cfg.feature_cache and cache_identity else None
    views = scfg.feature_views if run.config.data.augment != "none" else 1
    train = road_features(run, cache, cache_identity, run.splits.train, views)
    val = road_features(run, cache, cache_identity, run.splits.val, 1)
    has_test = run.splits.test is not None and len(run.splits.test) > 0
    test = road_features(run, cache, cache_identity, run.splits.test, 1) if has_test else None
    outcome = None
    if run.dist.is_main:
        history, metrics = _fit_head(run, train, val)
        if test is not None:
            scores = _head_eval(run, *test)
            metrics.update(test_accuracy=scores["accuracy"], test_loss=scores["loss"], test_images=scores["images"])
        if run.run_dir is not None:
            write_history(run.run_dir, history)
        head_state = {k: v.detach().cpu() for k, v in run.model.get_classifier().state_dict().items()}
        cache_stats = {"hits": cache.hits, "misses": cache.misses} if cache else {}
        outcome = (history, metrics, head_state, cache_stats)
    history, metrics, head_state, cache_stats = broadcast_object(outcome)
    run.model.get_classifier().load_state_dict(head_state)
    return FitResult(history, metrics, [phase_info], {"feature_views": views}, cache_stats)


def _fit_head(run: RunContext, train: tuple[np.ndarray, np.ndarray],
              val: tuple[np.ndarray, np.ndarray]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The new head on the features, with the convex solver or the SGD loop (one process)."""
    solver = run.config.strategy.head_solver
    history, metrics = HEAD_SOLVERS[solver](run, *train, *val)
    metrics["head_solver"] = solver
    return history, metrics


def _fit_head_lbfgs(run: RunContext, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
                    val_y: np.ndarray) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The convex solver (``head_solver``): one history row per regularisation strength tried."""
    rows = fit_linear_head(run.model.get_classifier(), train_x, train_y, val_x, val_y, len(run.splits.classes),
                           seed=run.config.train.seed,
                           class_weight=None if run.class_weight is None else np.asarray(run.class_weight))
    history = [{"epoch": i + 1, "phase": "head", "lr": math.nan, "train_loss": math.nan,
                "train_accuracy": r["train_accuracy"], "val_loss": r["val_loss"],
                "val_accuracy": r["val_accuracy"], "seconds": r["seconds"], "C": r["C"],
                "train_images": r["train_images"]} for i, r in enumerate(rows)]
    best = next(r for r in rows if r.get("chosen"))  # the exported head's row
    return history, {"val_accuracy": best["val_accuracy"], "val_loss": best["val_loss"], "val_images": len(val_y),
                     "head_C": best["C"]}


def road_features(run: RunContext, cache: FeatureCache | None, identity: dict[str, Any] | None, samples: Any,
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
        feats = cache.get(entry, dim=run.model.num_features) if entry else None  # a mismatching entry: recomputed
        if not broadcast_object(feats is not None):  # every process learns whether the backbone must run
            seed_epoch(run, view)
            local, _ = extract_features(run.model.feature_extractor(), run.loader(samples, transform, train=False), run.device,
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


def _head_eval(run: RunContext, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                         batch_size=FEATURE_BATCH)
    head_precision = Precision(train="fp32", inference="fp32")  # the head is tiny: no reason to lose precision
    return evaluate(run.model.get_classifier(), run.criterion, loader, run.device, precision=head_precision)


def _fit_head_sgd(run: RunContext, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
                  val_y: np.ndarray) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The epoch loop on the features: any head, ``epochs`` at ``lr``, the epoch ``keep_if_best`` picks kept."""
    cfg = run.config.train
    head = run.model.get_classifier()
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(train_x), torch.from_numpy(train_y))
    generator = torch.Generator()
    loader = torch.utils.data.DataLoader(dataset, batch_size=FEATURE_BATCH, shuffle=True, generator=generator)
    optimizer = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = warmup_cosine(optimizer, cfg.epochs * len(loader), round(cfg.warmup_epochs * len(loader)))
    state = TrainingState()
    fp32 = Precision(train="fp32", inference="fp32")
    for epoch in range(cfg.epochs):
        generator.manual_seed(set_epoch_seed(cfg.seed, epoch).initial_seed())
        head.train()
        lr = optimizer.param_groups[0]["lr"]
        train = train_one_epoch(head, run.loss, optimizer, loader, run.device, epoch=epoch, precision=fp32,
                                scheduler=scheduler, progress=False, desc="head")
        val = _head_eval(run, val_x, val_y)
        record_epoch(state, run.model, history_row(epoch + 1, "head", lr, train, val), val, cfg.patience)
        run.report_epoch(state.history)
        if state.stopped:
            break
    run.model.load_state_dict(state.best_weights)
    metrics = state.metrics()
    del metrics["early_stopped"]
    return state.history, metrics


# head_solver → how the head is fitted; the names are the frozen strategy's (checked before any data is read)
HEAD_SOLVERS = {"lbfgs": _fit_head_lbfgs, "sgd": _fit_head_sgd}
