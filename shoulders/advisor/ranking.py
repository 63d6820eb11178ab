"""Backbone ranking: which pretrained network suits a dataset best, in seconds each, without fine-tuning."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

from ..data import Samples, resolve_data_config
from ..models import WeightsUnavailableError, create_backbone, resolve_backbone_name
from ..train import resolve_device
from .measure import DEFAULT_SAMPLE_SIZE, measure_sample
from .scores import linear_probe_accuracy, logme

RANKING_SCORE = "logme"  # You et al. (ICML 2021) designed LogME for exactly this: ranking pretrained models, fast


@dataclass
class BackboneScore:
    """One candidate backbone in a ranking."""

    backbone: str
    score: float  # the ranking score (LogME); NaN when the backbone could not be measured
    linear_probe: float = math.nan
    seconds: float = 0.0
    error: str | None = None  # why it was skipped (e.g. its weights are not available offline)
    requested: str = ""  # the name as given (an alias such as "lite0"), before resolving


def rank_backbones(pool: Samples, backbones: Sequence[str], *, image_size: int | None, device: str, seed: int,
                   sample_size: int = DEFAULT_SAMPLE_SIZE) -> tuple[list[BackboneScore], dict[str, tuple[Any, ...]]]:
    """Ranks ``backbones`` by LogME of their frozen features on the sample: one forward pass each, no training.

    You, Liu, Wang, Long (2021), "LogME: Practical Assessment of Pre-trained Models for Transfer Learning", ICML
    2021, arXiv:2102.11005, show LogME's ranking of pretrained models agrees with their fine-tuned accuracy.

    Returns:
        The scores, best first (unmeasurable backbones last, with the reason), and per measured backbone the
        (model, data config, task-size measurement) for reuse by the advice.
    """
    scores, built = [], {}
    dev = resolve_device(device)
    for name in backbones:
        start = time.perf_counter()
        try:
            model, _ = create_backbone(name)
        except (WeightsUnavailableError, ValueError) as e:
            scores.append(BackboneScore(name, math.nan, error=str(e).splitlines()[0], requested=name))
            continue
        config = resolve_data_config(model, image_size, None)
        task = measure_sample(model, pool, config, classifier=None, device=dev, sample_size=sample_size, seed=seed)
        scores.append(BackboneScore(resolve_backbone_name(name), logme(task.features, task.labels),
                                    linear_probe_accuracy(task.features, task.labels, seed=seed),
                                    round(time.perf_counter() - start, 2), requested=name))
        built[name] = (model, config, task)
    scores.sort(key=lambda s: (s.error is not None, -s.score if s.error is None else 0.0))
    return scores, built
