"""Input checks shared by the advisor's scores and measures: arrays in, clear errors out, float64 for the maths."""

from __future__ import annotations

import numpy as np


def _as_features(features: np.ndarray, name: str = "features") -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (samples, dims); got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError(f"{name} contains NaN or inf; check the feature extraction (e.g. fp16 overflow)")
    return f


def _as_probs(source_probs: np.ndarray) -> np.ndarray:
    p = _as_features(source_probs, "source_probs")
    if p.shape[1] < 2:
        raise ValueError(f"source_probs needs at least 2 source classes; got shape {p.shape}")
    # A loose tolerance accepts float16/float32 softmax outputs; logits fail it, which is the mistake to catch.
    if p.min() < 0 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("source_probs rows must be probabilities summing to 1; apply softmax to the logits first")
    return p / p.sum(axis=1, keepdims=True)


def _as_labels(labels: np.ndarray, n: int | None = None, min_per_class: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Checks that labels are ints 0..C-1, every class present, C >= 2; returns (labels, counts per class)."""
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array; got dtype {y.dtype}, shape {y.shape} "
                         "(encode class names with np.unique(names, return_inverse=True))")
    if n is not None and len(y) != n:
        raise ValueError(f"labels has {len(y)} entries but the inputs have {n} samples")
    if len(y) == 0 or y.min() < 0:
        raise ValueError("labels must be non-negative class indices 0..C-1")
    counts = np.bincount(y).astype(np.int64)
    if len(counts) < 2:
        raise ValueError("labels must contain at least 2 classes")
    if counts.min() < max(min_per_class, 1):
        bad = np.flatnonzero(counts < max(min_per_class, 1)).tolist()
        raise ValueError(f"classes {bad} have fewer than {max(min_per_class, 1)} samples (counts {counts.tolist()}); "
                         "labels must be 0..C-1 with every class present (re-encode with np.unique)")
    return y.astype(np.int64), counts


def _one_hot(y: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes)[y]
