"""Classification metrics for an evaluated split, as JSON-ready values.

Everything except the expected calibration error comes from ``sklearn.metrics``, so the numbers match what any
reader would get from scikit-learn on the same predictions; this module only validates the inputs, names the
classes and turns NumPy values into plain Python ones.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

ECE_BINS = 15  # the usual choice since Guo et al. (2017), so numbers compare with the literature
MOST_CONFUSED_LIMIT = 10
_EPS = 1e-12  # keeps -log(p) finite when a model puts exactly zero on the true class


def _validate(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Checks shapes and label range, returning ``y_true`` as int64 and ``proba`` as float64."""
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"proba must have shape (n_samples, n_classes), got {p.shape}; pass softmax outputs")
    if y.ndim != 1 or y.shape[0] != p.shape[0]:
        raise ValueError(f"y_true must be 1-D with {p.shape[0]} labels (one per row of proba), got shape {y.shape}")
    if p.shape[1] != len(classes):
        raise ValueError(f"proba has {p.shape[1]} columns but {len(classes)} classes were given; they must match")
    if y.size == 0:
        raise ValueError("no samples to evaluate; check that the split is not empty")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y_true must hold integer class indices, got dtype {y.dtype}; map names with classes.index")
    if y.min() < 0 or y.max() >= len(classes):
        raise ValueError(f"y_true holds indices outside [0, {len(classes) - 1}]; check the class list")
    sums = p.sum(axis=1, keepdims=True)
    if np.any(np.abs(sums - 1.0) > 1e-3):
        raise ValueError("proba rows must sum to 1 (softmax outputs), not logits; apply a softmax first")
    # float32 softmax rows sum to 1 only within ~1e-7; renormalise in float64 so sklearn's log_loss is exact
    return y.astype(np.int64), p / sums


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top-1 confidence over equal-width bins.

    ``sum_b |B_b| / N * |accuracy(B_b) - mean confidence(B_b)|`` where bin ``b`` holds the samples whose
    confidence lies in ``((b-1)/n_bins, b/n_bins]``.

    Args:
        y_true: integer labels, shape (N,).
        proba: class probabilities, shape (N, C).
        n_bins: number of equal-width confidence bins on [0, 1].

    Returns:
        The ECE, in [0, 1].
    """
    proba = np.asarray(proba, dtype=np.float64)
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == np.asarray(y_true)).astype(np.float64)
    # Right-closed bins, so a confidence of exactly 1.0 lands in the last bin rather than an extra one.
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        in_bin = bins == b
        total += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(total)


def _per_class(y: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Per-class precision/recall/F1/support plus their macro and weighted averages."""
    labels = list(range(len(classes)))
    p, r, f, s = precision_recall_fscore_support(y, y_pred, labels=labels, zero_division=0)
    per_class = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, name in enumerate(classes)
    }
    averages = {}
    for average in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(y, y_pred, labels=labels, average=average, zero_division=0)
        averages[f"{average}_avg"] = {"precision": float(ap), "recall": float(ar), "f1": float(af)}
    return {"per_class": per_class, **averages}


def _top_k(y: np.ndarray, p: np.ndarray, top_k: tuple[int, ...]) -> dict[str, float]:
    """Top-k accuracy for every requested k below the number of classes (k >= C is trivially 1)."""
    n_classes = p.shape[1]
    # sklearn reads a 2-column score as ambiguous in the binary case and wants the positive-class column.
    scores = p[:, 1] if n_classes == 2 else p
    return {
        str(k): float(top_k_accuracy_score(y, scores, k=k, labels=list(range(n_classes))))
        for k in sorted(set(top_k))
        if 0 < k < n_classes
    }


def most_confused(cm: np.ndarray, classes: list[str], limit: int = MOST_CONFUSED_LIMIT) -> list[dict[str, Any]]:
    """Largest off-diagonal cells of a count confusion matrix (rows = true), largest first.

    Ties are broken by (true, predicted) index so the list is deterministic.
    """
    pairs = [
        (int(cm[t, q]), t, q) for t in range(cm.shape[0]) for q in range(cm.shape[1]) if t != q and cm[t, q] > 0
    ]
    pairs.sort(key=lambda item: (-item[0], item[1], item[2]))
    return [{"true": classes[t], "predicted": classes[q], "count": n} for n, t, q in pairs[:limit]]


def compute_metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: list[str], top_k: tuple[int, ...] = (1, 3, 5)
) -> dict[str, Any]:
    """Computes the metrics the report shows for one evaluated split.

    Args:
        y_true: integer class indices, shape (N,).
        proba: predicted probabilities, shape (N, C), rows summing to 1.
        classes: class names, index-aligned with the columns of ``proba``.
        top_k: the k values for top-k accuracy; those ``>= C`` are skipped because they are always 1.

    Returns:
        A JSON-ready dict with ``n_samples``, ``n_classes``, ``accuracy``, ``balanced_accuracy``, ``per_class``
        ({name: {precision, recall, f1, support}}), ``macro_avg``, ``weighted_avg``, ``top_k_accuracy``
        ({"k": value}, string keys so the dict survives a JSON round trip unchanged), ``log_loss``, ``ece``,
        ``confusion_matrix`` (counts, rows = true class), ``confusion_matrix_normalized`` (each row divided by
        its total; rows of absent classes stay 0) and ``most_confused`` ([{true, predicted, count}], top 10).

    Raises:
        ValueError: if shapes or labels do not match ``classes``.
    """
    y, p = _validate(y_true, proba, classes)
    labels = list(range(len(classes)))
    y_pred = p.argmax(axis=1)
    cm = confusion_matrix(y, y_pred, labels=labels)
    with warnings.catch_warnings():
        # A split may lack some classes; sklearn warns about it, the per-class support of 0 already says so.
        warnings.simplefilter("ignore", UserWarning)
        balanced = balanced_accuracy_score(y, y_pred)
    return {
        "n_samples": int(y.shape[0]),
        "n_classes": len(classes),
        "accuracy": float(accuracy_score(y, y_pred)),
        "balanced_accuracy": float(balanced),
        **_per_class(y, y_pred, classes),
        "top_k_accuracy": _top_k(y, p, top_k),
        "log_loss": float(log_loss(y, p, labels=labels)),
        "ece": expected_calibration_error(y, p),
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_normalized": confusion_matrix(y, y_pred, labels=labels, normalize="true").tolist(),
        "most_confused": most_confused(cm, classes),
    }


def top_losses(y_true: np.ndarray, proba: np.ndarray, k: int = 16) -> list[dict[str, Any]]:
    """The ``k`` misclassified samples the model was most confident about, worst first.

    The loss is the cross-entropy ``-log p_true``; among wrong predictions a larger loss means the model put
    less probability on the right answer. Ties keep the dataset order.

    Args:
        y_true: integer class indices, shape (N,).
        proba: predicted probabilities, shape (N, C).
        k: how many items to return at most.

    Returns:
        ``[{index, true, predicted, p_pred, p_true, loss}]`` with class indices (not names), at most ``k`` long;
        empty when every prediction is right.
    """
    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(proba, dtype=np.float64)
    predicted = p.argmax(axis=1)
    rows = np.arange(y.shape[0])
    p_true = p[rows, y]
    loss = -np.log(np.clip(p_true, _EPS, None))
    wrong = np.flatnonzero(predicted != y)
    order = wrong[np.argsort(-loss[wrong], kind="stable")][: max(k, 0)]
    return [
        {
            "index": int(i),
            "true": int(y[i]),
            "predicted": int(predicted[i]),
            "p_pred": float(p[i, predicted[i]]),
            "p_true": float(p_true[i]),
            "loss": float(loss[i]),
        }
        for i in order
    ]
