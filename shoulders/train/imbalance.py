"""Class imbalance: whether to weight the loss by class, decided as a value with its reason.

``class_weight="balanced"`` weights each class by ``n_images / (n_classes × n_images_of_class)`` (scikit-learn's
``compute_class_weight("balanced")``), so every class contributes equally to the loss: the fine-tuning
strategies' cross-entropy and the frozen head's solver get the same weights. ``"auto"`` turns it on when the
largest class has at least :data:`IMBALANCE_RATIO` times the images of the smallest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASS_WEIGHTS = ("auto", "balanced", "none")
IMBALANCE_RATIO = 3.0  # largest / smallest class at which "auto" weights the loss (the advisor's warning level)


@dataclass(frozen=True)
class ClassWeighting:
    """The resolved choice: ``mode`` (``balanced`` | ``none``), the per-class ``weights`` (``None`` for none),
    the imbalance ``ratio`` measured on the training split, and the ``reason`` in a sentence."""

    mode: str
    weights: tuple[float, ...] | None
    ratio: float
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"mode": self.mode, "weights": list(self.weights) if self.weights else None,
                "ratio": self.ratio, "reason": self.reason}


def resolve_class_weight(setting: str, labels: np.ndarray, num_classes: int) -> ClassWeighting:
    """Turns ``class_weight`` (``auto`` | ``balanced`` | ``none``) and the training labels into weights.

    Raises:
        ValueError: an unknown setting.
    """
    if setting not in CLASS_WEIGHTS:
        raise ValueError(f"class_weight must be one of {', '.join(CLASS_WEIGHTS)}, got {setting!r}")
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    present = counts[counts > 0]
    ratio = float(present.max() / present.min()) if len(present) else 1.0
    figure = f"the largest class has {ratio:.1f}× the images of the smallest ({present.min()} to {present.max()})"
    if setting == "none" or (setting == "auto" and ratio < IMBALANCE_RATIO):
        why = "chosen by the user" if setting == "none" else f"below {IMBALANCE_RATIO:g}×"
        return ClassWeighting("none", None, round(ratio, 3), f"no class weights: {figure}, {why}")
    from sklearn.utils.class_weight import compute_class_weight  # here: the CLI checks names before sklearn loads

    classes = np.flatnonzero(counts)
    balanced = compute_class_weight("balanced", classes=classes, y=np.asarray(labels))
    weights = np.ones(num_classes)
    weights[classes] = balanced
    why = "chosen by the user" if setting == "balanced" else f"at least {IMBALANCE_RATIO:g}×"
    return ClassWeighting("balanced", tuple(round(float(w), 6) for w in weights), round(ratio, 3),
                          f"class-balanced loss weights: {figure}, {why}; every class counts equally in the loss")
