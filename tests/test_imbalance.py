"""Class imbalance: the weighting decision (a value with its reason) and the frozen head's weighted solver."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

from shoulders.train.head_solver import fit_linear_head, fit_softmax
from shoulders.train.imbalance import IMBALANCE_RATIO, resolve_class_weight


def test_auto_turns_weights_on_at_the_ratio_with_its_reason() -> None:
    even = np.repeat([0, 1, 2], [10, 12, 8])
    off = resolve_class_weight("auto", even, 3)
    assert off.mode == "none" and off.weights is None and off.ratio == 1.5 and "below 3×" in off.reason
    skewed = np.repeat([0, 1, 2], [30, 10, 10])
    on = resolve_class_weight("auto", skewed, 3)
    assert on.mode == "balanced" and on.ratio == IMBALANCE_RATIO and "at least 3×" in on.reason
    assert on.weights == pytest.approx((50 / 90, 50 / 30, 50 / 30))  # n / (classes × count)
    assert sum(w * n for w, n in zip(on.weights, (30, 10, 10))) == pytest.approx(50)  # weights sum to N over images
    forced = resolve_class_weight("balanced", even, 4)  # a class absent from training keeps weight 1
    assert forced.mode == "balanced" and forced.weights[3] == 1.0 and "chosen by the user" in forced.reason
    assert resolve_class_weight("none", skewed, 3).weights is None
    with pytest.raises(ValueError, match="class_weight must be one of auto, balanced, none"):
        resolve_class_weight("inverse", skewed, 3)


def _skewed(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1, 2], [240, 40, 20])
    centres = np.array([[0.0, 0.0], [1.2, 0.0], [0.0, 1.2]])
    return (centres[y] + rng.normal(size=(len(y), 2))).astype(np.float32), y


def test_weighted_solver_matches_scikit_learn_balanced() -> None:
    x, y = _skewed()
    x = StandardScaler().fit_transform(x).astype(np.float32)
    weights = resolve_class_weight("balanced", y, 3).weights
    ref = LogisticRegression(C=0.5, class_weight="balanced", tol=1e-10, max_iter=10000).fit(x, y)
    w, b, _ = fit_softmax(torch.from_numpy(x), torch.from_numpy(y), 3, 0.5, tol=1e-7, max_iter=3000,
                          class_weight=torch.tensor(weights, dtype=torch.float32))
    np.testing.assert_allclose(w.numpy(), ref.coef_, atol=3e-3 * np.abs(ref.coef_).max())
    plain, _, _ = fit_softmax(torch.from_numpy(x), torch.from_numpy(y), 3, 0.5, tol=1e-7, max_iter=3000)
    assert np.abs(plain.numpy() - w.numpy()).max() > 0.05  # the weights change the solution


def test_weighted_head_recalls_the_small_classes_better() -> None:
    x, y = _skewed(1)
    test_x, test_y = _skewed(2)
    recalls = {}
    for mode in ("none", "balanced"):
        head = nn.Linear(2, 3)
        weighting = resolve_class_weight(mode, y, 3)
        fit_linear_head(head, x, y, x, y, 3, class_weight=None if weighting.weights is None
                        else np.asarray(weighting.weights))
        with torch.no_grad():
            pred = head(torch.from_numpy(test_x)).argmax(1).numpy()
        recalls[mode] = np.mean([np.mean(pred[test_y == k] == k) for k in range(3)])
    assert recalls["balanced"] > recalls["none"] + 0.05
