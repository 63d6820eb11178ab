"""The torch L-BFGS head solver: scikit-learn's multinomial logistic regression, searched coarse-to-fine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler
from torch import nn

from shoulders.train import head_solver
from shoulders.train.head_solver import C_COARSE, fit_linear_head, fit_softmax


def blobs(n: int, d: int, k: int, seed: int, spread: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * spread
    y = rng.integers(0, k, size=n)
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y.astype(np.int64)


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_fit_softmax_matches_scikit_learn_multinomial(C: float) -> None:
    x, y = blobs(300, 8, 4, seed=0)
    x = StandardScaler().fit_transform(x).astype(np.float32)
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(x, y)
    w, b, evaluations = fit_softmax(torch.from_numpy(x), torch.from_numpy(y), 4, C, tol=1e-6, max_iter=2000)
    assert 0 < evaluations < 2000
    np.testing.assert_allclose(w.numpy(), ref.coef_, rtol=0, atol=2e-3 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(b.numpy() - b.numpy().mean(), ref.intercept_ - ref.intercept_.mean(), atol=2e-3)
    ours = torch.softmax(torch.from_numpy(x) @ w.T + b, 1).numpy()
    assert log_loss(y, ours) == pytest.approx(log_loss(y, ref.predict_proba(x)), rel=1e-3)
    # the same objective: scikit-learn's optimum is no better than ours on it (float32 rounding aside)
    objective = lambda loss, coef: loss + (coef ** 2).sum() / (2 * C * len(y))  # noqa: E731
    assert objective(log_loss(y, ours), w.numpy().astype(np.float64)) <= objective(
        log_loss(y, ref.predict_proba(x)), ref.coef_) + 1e-6


def test_warm_start_reaches_the_same_optimum_with_fewer_evaluations() -> None:
    x, y = blobs(400, 10, 3, seed=1)
    xt, yt = torch.from_numpy(StandardScaler().fit_transform(x).astype(np.float32)), torch.from_numpy(y)
    w1, b1, _ = fit_softmax(xt, yt, 3, 0.1)
    cold_w, _, cold = fit_softmax(xt, yt, 3, 0.3)
    warm_w, _, warm = fit_softmax(xt, yt, 3, 0.3, init=(w1, b1))
    assert warm < cold
    torch.testing.assert_close(warm_w, cold_w, atol=1e-3, rtol=0)


def test_search_is_coarse_to_fine_and_exports_the_chosen_fit() -> None:
    x, y = blobs(500, 12, 5, seed=2, spread=0.6)
    head = nn.Linear(12, 5)
    rows = fit_linear_head(head, x[:400], y[:400], x[400:], y[400:], num_classes=5)
    cs = [r["C"] for r in rows]
    assert set(C_COARSE) <= set(cs) and len(cs) > len(C_COARSE)  # refined points between the decades
    chosen = [r for r in rows if r.get("chosen")]
    assert len(chosen) == 1 and chosen[0] == max(rows, key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    with torch.no_grad():
        val_pred = head(torch.from_numpy(x[400:])).argmax(1).numpy()
    assert (val_pred == y[400:]).mean() == pytest.approx(chosen[0]["val_accuracy"], abs=1e-6)


def test_large_training_sets_search_a_subsample_then_refit_on_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(head_solver, "SEARCH_IMAGES", 100)
    x, y = blobs(600, 6, 3, seed=3)
    head = nn.Linear(6, 3)
    rows = fit_linear_head(head, x[:500], y[:500], x[500:], y[500:], num_classes=3)
    assert {r["train_images"] for r in rows[:-1]} == {100.0}  # stratified: 100 of 500, shares kept
    assert rows[-1]["train_images"] == 500 and rows[-1].get("chosen") == 1.0
    assert sum(bool(r.get("chosen")) for r in rows) == 1
    searched = max(rows[:-1], key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    assert rows[-1]["C"] == searched["C"]


def test_absent_and_single_classes_never_win() -> None:
    x, y = blobs(60, 4, 2, seed=4)
    y = y * 2  # classes 0 and 2; class 1 and 3 never seen
    head = nn.Linear(4, 4)
    fit_linear_head(head, x, y, x, y, num_classes=4)
    with torch.no_grad():
        logits = head(torch.from_numpy(x))
    assert set(logits.argmax(1).tolist()) <= {0, 2}
    assert torch.all(logits[:, [1, 3]] < -1e3)
    rows = fit_linear_head(head, x, np.full(60, 3), x, np.full(60, 3), num_classes=4)
    assert rows[0]["val_accuracy"] == 1.0 and rows[0].get("chosen")
    with torch.no_grad():
        assert set(head(torch.from_numpy(x)).argmax(1).tolist()) == {3}


def test_features_stay_float32_on_the_head_device() -> None:
    x, y = blobs(80, 5, 2, seed=5)
    head = nn.Linear(5, 2)
    fit_linear_head(head, x.astype(np.float64), y, x, y, num_classes=2)
    assert head.weight.dtype == torch.float32 and head.weight.device.type == "cpu"
    assert torch.isfinite(head.weight).all()


def test_small_problems_solve_on_one_thread_and_restore_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    original = head_solver.fit_softmax
    monkeypatch.setattr(head_solver, "fit_softmax", lambda *a, **k: seen.append(torch.get_num_threads())
                        or original(*a, **k))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x, y = blobs(100, 4, 3, seed=6)
        fit_linear_head(nn.Linear(4, 3), x, y, x, y, num_classes=3)
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
