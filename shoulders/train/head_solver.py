"""A convex solver for the new linear head on cached features, exported as the same torch ``nn.Linear``.

On fixed features the linear head is a multinomial logistic regression: L-BFGS finds its optimum exactly, and
its one hyper-parameter (the L2 strength) is chosen on the validation split instead of guessed.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)  # inverse L2 strength, on standardised features


def fit_linear_head(head: nn.Linear, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
                    val_y: np.ndarray, num_classes: int, seed: int = 0) -> list[dict[str, float]]:
    """Fits ``head`` in place by L-BFGS logistic regression, C chosen by validation accuracy (then log loss).

    Returns one row per candidate C (``C``, ``train_accuracy``, ``val_accuracy``, ``val_loss``) for the history.
    """
    scaler = StandardScaler().fit(train_x)
    tx, vx = scaler.transform(train_x), scaler.transform(val_x)
    rows, best = [], None
    for c in C_GRID:
        clf = LogisticRegression(C=c, max_iter=1000, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(tx, train_y)
        weight, bias = _full_softmax_params(clf, num_classes)
        val_logits = vx @ weight.T + bias
        val_loss = float(nn.functional.cross_entropy(torch.from_numpy(val_logits), torch.from_numpy(val_y)))
        row = {"C": c, "train_accuracy": float(clf.score(tx, train_y)),
               "val_accuracy": float((val_logits.argmax(1) == val_y).mean()), "val_loss": val_loss}
        rows.append(row)
        if best is None or (row["val_accuracy"], -row["val_loss"]) > (best[0]["val_accuracy"], -best[0]["val_loss"]):
            best = (row, weight, bias)
    _, weight, bias = best
    # Fold the standardisation into the layer: W (x - mu) / sigma + b = (W / sigma) x + (b - W mu / sigma).
    w = weight / scaler.scale_
    b = bias - w @ scaler.mean_
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(w).to(head.weight))
        head.bias.copy_(torch.from_numpy(b).to(head.bias))
    return rows


def _full_softmax_params(clf: LogisticRegression, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, D) weights and (C,) bias over all ``num_classes`` classes, also for the binary and missing-class cases."""
    coef, intercept = clf.coef_.astype(np.float64), clf.intercept_.astype(np.float64)
    if coef.shape[0] == 1:  # binary: sigmoid(w x + b) = softmax([0, w x + b])[1]
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.array([0.0, intercept[0]])
    weight = np.full((num_classes, coef.shape[1]), 0.0)
    bias = np.full(num_classes, -1e4)  # a class absent from training can never win
    weight[clf.classes_] = coef
    bias[clf.classes_] = intercept
    return weight.astype(np.float32), bias.astype(np.float32)
