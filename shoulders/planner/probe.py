"""The throughput probe on the real model: strategies set what trains, the data's transform sets the load cost."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..config import StrategyConfig
from ..data import Samples, create_transforms, resolve_data_config
from ..strategies import ALL_BLOCKS, Phase, create_strategy
from ..train import default_cache_dir, resolve_device, resolve_precision
from .throughput import Rates, Throughput, ThroughputCache, machine_identity, measure_rates, probe_throughput

LOAD_SAMPLE = 32  # images decoded and transformed to time the loader's per-image cost


def _set_trainable(model: nn.Module, depth: int | None) -> None:
    """What the full (``None``) or partial (top ``depth``) strategy makes trainable, with its BatchNorm policy."""
    name = "full" if depth is None else "partial"
    strategy = create_strategy(StrategyConfig(name=name, trainable_blocks=depth))
    strategy.apply_phase(model, Phase("finetune", 1, ALL_BLOCKS if depth is None else depth))
    strategy.set_train_mode(model)


def load_costs(samples: Samples, model: nn.Module, sizes: Sequence[int], augment: str,
               count: int = LOAD_SAMPLE) -> dict[int, dict[str, float]]:
    """Seconds to decode and transform one image at each of ``sizes``, through the training transform (with
    ``augment``) and the evaluation one: ``{size: {"train": s, "eval": s}}`` (the loader's work per image)."""
    n = min(count, len(samples))
    start = time.perf_counter()
    images = [samples.load(i) for i in range(n)]
    decode = (time.perf_counter() - start) / max(n, 1)
    costs = {}
    for size in sorted(set(sizes)):
        train_tf, eval_tf = create_transforms(resolve_data_config(model, size, None), augment=augment)
        costs[size] = {kind: round(decode + _seconds_each(tf, images), 6)
                       for kind, tf in (("train", train_tf), ("eval", eval_tf))}
    return costs


def _seconds_each(transform: Any, images: list[Any]) -> float:
    start = time.perf_counter()
    for image in images:
        transform(image)
    return (time.perf_counter() - start) / max(len(images), 1)


def measure_throughput(model: nn.Module, *, sizes: Sequence[int], depths: Sequence[int], batch_size: int,
                       device: str, precision: str, channels_last: bool, backbone: str, samples: Samples | None = None,
                       augment: str = "none", workers: int = 0, cache_dir: str | Path | None = None,
                       use_cache: bool = True, cached_only: Sequence[int] = (),
                       features_only: Sequence[int] = ()) -> Throughput:
    """Images/s of the real ``model`` at each of ``sizes``: full and partial training steps, frozen features,
    evaluation; from the cache in ``cache_dir`` (default: the user cache) when this machine measured them before.

    Args:
        model: the ``TransferModel`` to plan for (copied for the probe; its weights do not change).
        sizes: candidate input sizes.
        depths: partial depths to time.
        batch_size: the training batch (throughput depends on it).
        device, precision, channels_last: the run's settings (``TrainConfig``).
        backbone: the backbone's name, part of the cache key.
        samples: training images, to time decoding + transforms per image (skipped when ``None``).
        augment: the training augmentation (its transform is timed).
        workers: loader processes (0: loading adds to each step; more: it overlaps).
        cached_only: more sizes, taken only where the cache has them (free); loading is timed at these too.
        features_only: more sizes probed for the frozen strategy's features and evaluation only (no training step).
    """
    dev = resolve_device(device)
    train_precision = resolve_precision(precision, dev)
    feature_precision = resolve_precision(precision, dev, fixed_features=True)
    identity = {**machine_identity(dev), "backbone": backbone, "device": str(dev), "precision": precision,
                "channels_last": channels_last, "batch_size": batch_size, "depths": sorted(depths)}
    cache = ThroughputCache(cache_dir or default_cache_dir()) if use_cache else None

    def measure(size: int, training: bool = True) -> Rates:
        return measure_rates(model, size, depths=depths, batch=batch_size, device=dev,
                             train_precision=train_precision, feature_precision=feature_precision,
                             channels_last=channels_last, trainable=_set_trainable, training=training)

    with torch.random.fork_rng():  # the probe's random batches must not move the run's random streams
        tp = probe_throughput(model, sizes, identity=identity, cache=cache, measure=measure, cached_only=cached_only,
                              features_only=features_only)
    if samples is not None and len(samples):
        tp.loading = load_costs(samples, model.backbone, [*sizes, *cached_only, *features_only], augment)
        tp.load_seconds = tp.loading[max(tp.loading)]["train"]  # the figure for a size not measured
    tp.workers = workers
    return tp
