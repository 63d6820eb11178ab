"""LP-FT (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features"): before fine-tuning, fit the new head
as a linear probe on the frozen backbone's features, so that fine-tuning starts from a head that already fits.

A random head sends large, arbitrary gradients into the pretrained blocks during the first steps and distorts
the features the head has not learnt to read yet; from the probe's head those gradients are small and aligned
with the features. The probe is the frozen strategy's convex L-BFGS head (``head_solver``), so the cost is one
forward pass over the training and validation images and a few seconds of solving.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
from torch import nn

from .head_solver import fit_linear_head

Features = Callable[[Any], tuple[np.ndarray, np.ndarray]]  # samples → (features (N, D), labels (N,))


def init_head_from_probe(head: nn.Module, features: Features, train: Any, val: Any, num_classes: int, *,
                         seed: int = 0) -> dict[str, Any]:
    """Sets the linear ``head`` in place to the linear probe fitted on ``features(train)``, its L2 strength chosen
    on ``features(val)``; returns what was done (for the run folder).

    Raises:
        ValueError: the head is not one linear layer (a hidden layer has no convex probe to start from).
    """
    if not isinstance(head, nn.Linear):
        raise ValueError("head_init='probe' needs a linear head: drop head_hidden= or use head_init='default'")
    start = time.perf_counter()
    train_x, train_y = features(train)
    val_x, val_y = features(val)
    rows = fit_linear_head(head, train_x, train_y, val_x, val_y, num_classes, seed=seed)
    best = max(rows, key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    return {"head_init": "probe", "probe_val_accuracy": best["val_accuracy"], "probe_C": best["C"],
            "seconds": round(time.perf_counter() - start, 2)}
