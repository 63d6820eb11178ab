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


def _imbalanced_arrays() -> tuple[np.ndarray, np.ndarray]:
    from conftest import colour_images

    x, y, _ = colour_images(40, seed=5)
    keep = np.concatenate([np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:10], np.flatnonzero(y == 2)[:8]])
    return x[keep], y[keep]


@pytest.mark.parametrize("setting, mode", [("auto", "balanced"), ("none", "none"), ("balanced", "balanced")])
def test_the_plan_turns_weights_on_for_imbalanced_data(setting: str, mode: str) -> None:
    from shoulders import RunConfig, TransferClassifier

    from conftest import TINY

    x, y = _imbalanced_arrays()
    config = RunConfig()
    config.train.class_weight = setting
    clf = TransferClassifier(backbone=TINY, strategy="frozen", pretrained=False, image_size=32, progress=False,
                             config=config).fit(x, y)
    assert clf.config_.train.class_weight == clf.plan_.class_weight == mode
    reason = next(r for r in clf.plan_.reasons if "class" in r and "weights" in r)
    assert "5.3× the images of the smallest (6 to 32)" in reason  # measured on the training split
    assert ("chosen by the user" in reason) == (setting != "auto")


def test_balanced_data_keeps_plain_loss_and_the_flag_reaches_the_config(colour_arrays) -> None:
    from shoulders.cli import build_parser
    from shoulders.train_cli import config_from_args

    from shoulders import TransferClassifier

    from conftest import TINY

    x, y, _ = colour_arrays
    clf = TransferClassifier(backbone=TINY, strategy="frozen", pretrained=False, image_size=32,
                             progress=False).fit(x, y)
    assert clf.config_.train.class_weight == "none" and any("below 3×" in r for r in clf.plan_.reasons)
    args = build_parser().parse_args(["train", "D", "--out", "o", "--class-weight", "balanced"])
    assert config_from_args(args).train.class_weight == "balanced"
    from shoulders import RunConfig
    from shoulders.resolution import check_names

    with pytest.raises(ValueError, match="class_weight='inverse' is unknown"):
        check_names(RunConfig().override({"class_weight": "inverse"}))
