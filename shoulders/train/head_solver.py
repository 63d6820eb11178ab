"""A convex solver for the new linear head on cached features, in torch, exported as the same ``nn.Linear``.

On fixed features the linear head is a multinomial logistic regression with an L2 penalty; L-BFGS finds its
optimum, and its one hyper-parameter (the penalty) is chosen on the validation split instead of guessed.

The solver runs in float32 on the run's device (the head's), with ``torch.optim.LBFGS`` (strong-Wolfe line
search), as CLIP_benchmark and DINOv2 fit their linear probes; CLIP's authors found PyTorch's L-BFGS as good
as scikit-learn's for this (openai/CLIP issue 202), and it avoids scikit-learn's float64 copies (4.8 GB and
370 s of a 407 s frozen fit on 60 000 images, benchmarks/README.md). The penalty is searched as in CLIP's
linear probes (Radford et al. 2021, appendix A.3): a coarse sweep over decades, then the step halved around the
best point, each fit warm-started from its nearest solved neighbour. Above ``SEARCH_IMAGES`` training images the
search runs on a stratified subsample and the chosen penalty is refitted once on all of them.

The objective is scikit-learn's ``LogisticRegression(C=C)`` on standardised features, divided by the number
of images: mean cross-entropy + ||W||² / (2 C N), the bias unpenalised; ``C`` keeps scikit-learn's meaning.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

C_COARSE = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # inverse L2 strength on standardised features: one point per decade
REFINE_STEPS = (0.5, 0.25)  # then C × 10^(±step) around the best, halving the step each round
SEARCH_IMAGES = 5_000  # above this, the penalty is chosen on a stratified subsample of this many, then refitted
MAX_ITER = 500  # L-BFGS iterations per fit (weak penalties on separable data approach their optimum slowly)
GRAD_TOL = 1e-5  # stop when every gradient entry of the (per-image) objective is below this
# The chosen C is solved once more from its own optimum to this tolerance, so the exported head (and a rerun on
# features equal to ~1e-7, e.g. gathered from several processes) sits at the optimum, not anywhere within 1e-5 of it.
POLISH_TOL = 1e-6
# The refit on every image after a subsample search is a new problem (another N): it is solved to this tolerance.
# On Fashion-MNIST's 60 000 features (1 000 validation images) a 5 000-image search + refit at 3e-4 took 10.8 s
# against 38.6 s for a 10 000-image search + refit at 1e-6, with the same accuracy (val 88.2 / 88.2 %, test 87.30 /
# 87.33 %): `python benchmarks/head_refit.py`, benchmarks/README.md "Where people wait".
REFIT_TOL = 3e-4
# Below this many feature values (images x dimensions) the solver runs on one CPU thread: each matrix product is
# then ~1 ms, too short to pay for OpenMP's synchronisation; with the cores shared, two threads took 93 s instead
# of 1.7 s for the search on 1000 images x 1280 features (one thread either way is never slower than ~2x).
ONE_THREAD_BELOW = 16_000_000
ABSENT_BIAS = -1e4  # a class absent from training can never win


@dataclass
class _Fit:
    """One solved penalty: parameters over the classes present in training, and its scores."""

    C: float
    weight: torch.Tensor
    bias: torch.Tensor
    row: dict[str, float]


def fit_softmax(x: torch.Tensor, y: torch.Tensor, num_classes: int, C: float,
                init: tuple[torch.Tensor, torch.Tensor] | None = None,
                max_iter: int = MAX_ITER, tol: float = GRAD_TOL,
                class_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Minimises mean cross-entropy(x Wᵀ + b, y) + ||W||² / (2 C N) by L-BFGS, from ``init`` or from zeros.

    Args:
        x: (N, D) float32 features (standardised by the caller), on the device to solve on.
        y: (N,) labels in ``[0, num_classes)``.
        num_classes: rows of W.
        C: inverse penalty strength, as scikit-learn's ``LogisticRegression(C=...)``.
        init: (W, b) to start from (the warm start along the regularisation path).
        max_iter: L-BFGS iterations at most.
        tol: largest gradient entry at which the optimum counts as reached.
        class_weight: (num_classes,) loss weight per class (the cross-entropy is then the weighted mean, as
            ``F.cross_entropy(weight=)``; "balanced" weights keep the sum of weights at N, so C keeps its meaning).

    Returns:
        (W (num_classes, D), b (num_classes,), function evaluations used).
    """
    if init is None:
        w = torch.zeros(num_classes, x.shape[1], device=x.device, dtype=x.dtype)
        b = torch.zeros(num_classes, device=x.device, dtype=x.dtype)
    else:
        w, b = init[0].detach().clone(), init[1].detach().clone()
    w.requires_grad_(True)
    b.requires_grad_(True)
    penalty = 1.0 / (2.0 * C * x.shape[0])
    optimizer = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-12,
                                  history_size=10, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=False)
        loss = F.cross_entropy(torch.addmm(b, x, w.t()), y, weight=class_weight) + penalty * w.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    evaluations = optimizer.state[w].get("func_evals", 0)
    return w.detach(), b.detach(), int(evaluations)


def fit_linear_head(head: nn.Linear, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
                    val_y: np.ndarray, num_classes: int, seed: int = 0,
                    class_weight: np.ndarray | None = None) -> list[dict[str, float]]:
    """Fits ``head`` in place: L2 logistic regression, C chosen by validation accuracy (then log loss).

    ``class_weight`` (one per class, e.g. ``shoulders.train.imbalance``'s balanced weights) weights the training
    loss as the fine-tuning strategies' cross-entropy does; validation scores stay unweighted.

    Returns one row per fitted C (``C``, ``train_accuracy``, ``val_accuracy``, ``val_loss``, ``train_images``,
    ``seconds``, ``evaluations``) for the history; the exported head's row has ``chosen`` = 1.0 (after a
    subsample search it is the refit on every training image).
    """
    device = head.weight.device
    tx = torch.as_tensor(np.asarray(train_x, dtype=np.float32), device=device)
    mean, scale = tx.mean(0), tx.std(0, unbiased=False)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # constant features: as StandardScaler
    tx = (tx - mean).div_(scale)
    vx = torch.as_tensor(np.asarray(val_x, dtype=np.float32), device=device).sub(mean).div_(scale)
    present = np.unique(np.asarray(train_y))  # the classes the solver can learn; the others never win
    remap = torch.full((num_classes,), -1, dtype=torch.long, device=device)
    remap[torch.as_tensor(present, device=device)] = torch.arange(len(present), device=device)
    ty = remap[torch.as_tensor(np.asarray(train_y), dtype=torch.long, device=device)]
    vy = torch.as_tensor(np.asarray(val_y), dtype=torch.long, device=device)
    weight = None if class_weight is None else torch.as_tensor(np.asarray(class_weight, dtype=np.float32)[present],
                                                                device=device)
    best, fits = _fit_all(tx, ty, vx, vy, remap, seed, weight)
    _export(head, best.weight, best.bias, present, num_classes, mean, scale)
    return [f.row for f in fits]


def _fit_all(tx: torch.Tensor, ty: torch.Tensor, vx: torch.Tensor, vy: torch.Tensor, remap: torch.Tensor,
             seed: int, weight: torch.Tensor | None) -> tuple[_Fit, list[_Fit]]:
    """The chosen fit and every fit made: the search (on a subsample above ``SEARCH_IMAGES``), then the refit."""
    present = int(remap.max()) + 1
    if present < 2:  # one class: nothing to separate; it always wins
        zero = torch.zeros(1, tx.shape[1], device=tx.device), torch.zeros(1, device=tx.device)
        fits = [_score(tx, ty, vx, vy, remap, math.nan, *zero, time.perf_counter(), 0)]
        sub = None
    else:
        sub = _stratified_subsample(ty, SEARCH_IMAGES, seed)
        fits = _search(tx[sub] if sub is not None else tx, ty[sub] if sub is not None else ty, vx, vy, remap, weight)
    best = max(fits, key=lambda f: (f.row["val_accuracy"], -f.row["val_loss"]))
    if present >= 2:  # the refit on every image (after a subsample search), or the polish of the chosen fit
        polished = _solve(tx, ty, vx, vy, remap, best.C, (best.weight, best.bias), weight,
                          tol=POLISH_TOL if sub is None else REFIT_TOL)
        fits = fits + [polished] if sub is not None else [polished if f is best else f for f in fits]
        best = polished
    best.row["chosen"] = 1.0
    return best, fits


@contextlib.contextmanager
def _threads_for(x: torch.Tensor) -> Iterator[None]:
    """One CPU thread for small problems (see ``ONE_THREAD_BELOW``); the caller's setting is restored after."""
    before = torch.get_num_threads()
    small = x.device.type == "cpu" and x.numel() < ONE_THREAD_BELOW
    torch.set_num_threads(1 if small else before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _search(tx: torch.Tensor, ty: torch.Tensor, vx: torch.Tensor, vy: torch.Tensor,
            remap: torch.Tensor, weight: torch.Tensor | None = None) -> list[_Fit]:
    """Coarse-to-fine over log10(C): the decades of ``C_COARSE`` from strong to weak penalty (each warm-started
    from the previous one), then ``best × 10^(±step)`` for each step of ``REFINE_STEPS``."""
    fits: list[_Fit] = []
    for c in sorted(C_COARSE):
        fits.append(_solve(tx, ty, vx, vy, remap, c, (fits[-1].weight, fits[-1].bias) if fits else None, weight))
    low, high = min(C_COARSE) * (1 - 1e-9), max(C_COARSE) * (1 + 1e-9)  # the coarse sweep bounds the search
    for step in REFINE_STEPS:
        best = max(fits, key=lambda f: (f.row["val_accuracy"], -f.row["val_loss"]))
        for c in (best.C * 10 ** -step, best.C * 10 ** step):
            if low <= c <= high and all(not math.isclose(c, f.C, rel_tol=1e-6) for f in fits):
                near = min(fits, key=lambda f: abs(math.log10(f.C / c)))
                fits.append(_solve(tx, ty, vx, vy, remap, c, (near.weight, near.bias), weight))
    return sorted(fits, key=lambda f: f.C)


def _solve(tx: torch.Tensor, ty: torch.Tensor, vx: torch.Tensor, vy: torch.Tensor, remap: torch.Tensor, c: float,
           init: tuple[torch.Tensor, torch.Tensor] | None, weight: torch.Tensor | None = None,
           tol: float = GRAD_TOL) -> _Fit:
    start = time.perf_counter()
    with _threads_for(tx):
        w, b, evaluations = fit_softmax(tx, ty, int(remap.max()) + 1, c, init, tol=tol, class_weight=weight)
    return _score(tx, ty, vx, vy, remap, c, w, b, start, evaluations)


@torch.no_grad()
def _score(tx: torch.Tensor, ty: torch.Tensor, vx: torch.Tensor, vy: torch.Tensor, remap: torch.Tensor, c: float,
           w: torch.Tensor, b: torch.Tensor, start: float, evaluations: int) -> _Fit:
    train_acc = float((torch.addmm(b, tx, w.t()).argmax(1) == ty).float().mean())
    val_logits = _full_logits(vx, w, b, remap)
    val_loss = float(F.cross_entropy(val_logits, vy)) if len(vy) else math.nan
    val_acc = float((val_logits.argmax(1) == vy).float().mean()) if len(vy) else math.nan
    row = {"C": c, "train_accuracy": train_acc, "val_accuracy": val_acc, "val_loss": val_loss,
           "train_images": float(len(ty)), "seconds": time.perf_counter() - start, "evaluations": float(evaluations)}
    return _Fit(c, w, b, row)


def _full_logits(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, remap: torch.Tensor) -> torch.Tensor:
    """Logits over all classes: the learned ones where ``remap`` maps them, ``ABSENT_BIAS`` elsewhere."""
    logits = torch.full((x.shape[0], remap.shape[0]), ABSENT_BIAS, device=x.device, dtype=x.dtype)
    learned = remap >= 0
    logits[:, learned] = torch.addmm(b, x, w.t())[:, remap[learned]]
    return logits


def _stratified_subsample(y: torch.Tensor, size: int, seed: int) -> torch.Tensor | None:
    """Indices of about ``size`` images with each class's share kept (at least one each); None if all fit."""
    if len(y) <= size:
        return None
    generator = torch.Generator().manual_seed(seed)
    labels = y.cpu()
    keep = []
    for k in torch.unique(labels):
        members = torch.nonzero(labels == k).flatten()
        take = max(1, round(size * len(members) / len(labels)))
        keep.append(members[torch.randperm(len(members), generator=generator)[:take]])
    return torch.sort(torch.cat(keep)).values.to(y.device)


def _export(head: nn.Linear, weight: torch.Tensor, bias: torch.Tensor, present: np.ndarray, num_classes: int,
            mean: torch.Tensor, scale: torch.Tensor) -> None:
    """Writes the solution into ``head``, standardisation folded in: W (x - mu) / sigma + b = (W / sigma) x +
    (b - W mu / sigma); classes absent from training get zero weights and ``ABSENT_BIAS``."""
    w = weight / scale
    b = bias - w @ mean
    full_w = torch.zeros(num_classes, w.shape[1], device=w.device, dtype=w.dtype)
    full_b = torch.full((num_classes,), ABSENT_BIAS, device=w.device, dtype=w.dtype)
    index = torch.as_tensor(present, device=w.device)
    full_w[index], full_b[index] = w, b
    with torch.no_grad():
        head.weight.copy_(full_w.to(head.weight))
        head.bias.copy_(full_b.to(head.bias))
