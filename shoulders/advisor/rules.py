"""The advisor's decisions as small functions of measured numbers: size figures, similarity, depth.

Each threshold here is a calibrated value; ``benchmarks/README.md`` ("Advisor calibration") has the evidence and
the command that reproduces it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .plan import LARGE_PER_CLASS

# similarity = 1 / (1 + geometric mean over BatchNorm layers of the standardised Fréchet distance between the
# data's activations and the layer's ImageNet running statistics), measured at the backbone's pretrained input
# size. Calibrated on tf_efficientnet_lite0 (benchmarks/README.md, "Advisor calibration"): natural-photo crops
# 0.86 (64 px crops) and 0.93 (full resolution); binary shapes/text 0.81, microscopy/astronomy 0.76, Fashion-MNIST
# 0.75, grey textures 0.75, digits 0.64. 0.83 is the middle of the gap between 0.81 and 0.86; calling similar data
# different costs less (a deeper fine-tune of good features) than the reverse (frozen features that do not fit).
SIMILARITY_THRESHOLD = 0.83
# Without BatchNorm statistics (e.g. a ViT), 1 - the ImageNet head's normalised prediction entropy stands in: at
# 224 px it gave 0.57 for full-resolution photos but 0.41 for upsampled 64 px photo crops, as low as microscopy
# (0.41) and Fashion-MNIST (0.40); digits 0.21. A weaker signal, and the reasons say so.
CONFIDENCE_THRESHOLD = 0.50
# The depth probe: a block counts as "as good as the best" within this much cross-validated probe accuracy, about
# the probe's standard error on a few hundred images.
PROBE_TOLERANCE = 0.02


@dataclass
class SizeFigures:
    """How much labelled data there is (training pool: train + validation images, not test)."""

    total: int
    classes: int
    min_per_class: int
    median_per_class: float
    max_per_class: int
    imbalance: float  # largest class / smallest class; 1.0 = balanced
    large_per_class: int = LARGE_PER_CLASS  # the threshold the median is compared with

    @classmethod
    def from_labels(cls, labels: np.ndarray, num_classes: int) -> "SizeFigures":
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
        if counts.size == 0 or counts.min() < 1:
            raise ValueError(f"every class needs at least one image to advise on; counts per class {counts.tolist()}")
        return cls(total=int(counts.sum()), classes=int(len(counts)), min_per_class=int(counts.min()),
                   median_per_class=float(np.median(counts)), max_per_class=int(counts.max()),
                   imbalance=round(float(counts.max() / counts.min()), 3))

    @property
    def large(self) -> bool:
        # The median, not the minimum: one rare class should not turn a large dataset into a small one; it is
        # reported through ``imbalance`` instead.
        return self.median_per_class >= self.large_per_class

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "large": self.large}


def similarity_from_statistics(bn_distances: list[float]) -> float:
    """1 / (1 + geometric mean of the per-layer distances): 1 = the data's activations match ImageNet's exactly.

    The geometric mean keeps one layer with a huge distance (e.g. the first, on grey images) from deciding alone.
    """
    d = np.asarray(bn_distances, dtype=np.float64)
    if d.size == 0:
        return math.nan
    return float(1.0 / (1.0 + np.exp(np.mean(np.log(np.maximum(d, 1e-12))))))


@dataclass(frozen=True)
class DepthChoice:
    """How many top blocks strategy 2 trains, and the two measurements behind it."""

    depth: int  # blocks to train, >= 1
    probe_peak: int  # 1-based block where the linear probe levels off
    probe_depth: int  # blocks above that peak (at least 1)
    statistics_depth: int | None  # blocks from the lowest one whose statistics depart from ImageNet's; None = unused


def probe_depth(probe_accuracies: list[float], *, tolerance: float = PROBE_TOLERANCE) -> tuple[int, int]:
    """``(depth, peak)`` from a linear probe on each block's pooled output (bottom to top).

    Features become task-specific with depth (Yosinski, Clune, Bengio, Lipson (2014), "How transferable are
    features in deep neural networks?", NeurIPS 2014, arXiv:1411.1792): where the probe stops improving, the blocks
    above no longer add what this task needs — they encode ImageNet's classes — so those are the ones to retrain.
    The first block whose accuracy comes within ``tolerance`` of the best is the last one kept frozen; at least
    the top block always trains.
    """
    acc = np.asarray(probe_accuracies, dtype=np.float64)
    if acc.size == 0:
        raise ValueError("the depth probe needs the accuracy of at least one block")
    peak = int(np.flatnonzero(acc >= acc.max() - tolerance)[0]) + 1
    return max(1, len(acc) - peak), peak


def statistics_depth(block_similarities: list[float], threshold: float = SIMILARITY_THRESHOLD) -> int:
    """Blocks from the lowest one whose input statistics look unlike ImageNet's (similarity under ``threshold``)
    up to the top; 0 when none does. A block fed activations its BatchNorm layers never saw normalises them wrongly,
    so it and everything above it must adapt."""
    departing = np.flatnonzero(np.asarray(block_similarities, dtype=np.float64) < threshold)
    return 0 if departing.size == 0 else len(block_similarities) - int(departing[0])


def choose_depth(probe_accuracies: list[float], block_similarities: list[float] | None = None, *,
                 tolerance: float = PROBE_TOLERANCE, threshold: float = SIMILARITY_THRESHOLD) -> DepthChoice:
    """Top blocks for strategy 2: the probe's depth, deepened to where the statistics depart when they are given.

    Quadrant 2 (large, similar data) passes only the probe: its features are ImageNet-like, so what needs retraining
    is the class-specific top. Quadrant 3 (small, different) also passes the per-block similarities, since there
    the mismatch starts wherever the image statistics first depart from ImageNet's — "deeper", as the seed says.
    """
    depth, peak = probe_depth(probe_accuracies, tolerance=tolerance)
    stats = statistics_depth(block_similarities, threshold) if block_similarities else None
    return DepthChoice(max(depth, stats or 0), peak, depth, stats)
