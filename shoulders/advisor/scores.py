"""Transferability and similarity scores: how well a frozen backbone suits a labelled target dataset.

Each score is a pure function of numpy arrays (pooled features, the pretrained head's softmax, or its argmax) and
the target labels; all arithmetic is float64. ``SCORES`` registers them with what they need, so the advisor can
call :func:`compute_scores` with whatever it has measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
from scipy.linalg import solve
from scipy.special import xlogy
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shoulders._registry import Registry
from shoulders.advisor._arrays import _as_features, _as_labels, _as_probs, _one_hot
from shoulders.advisor.distance import feature_distribution_distance  # re-exported: a similarity measure

__all__ = ["SCORES", "ScoreSpec", "compute_scores", "feature_distribution_distance", "gbc", "h_score", "leep",
           "linear_probe_accuracy", "list_scores", "logme", "nce", "prediction_entropy", "register_score"]

Needs = Literal["features", "probs", "source_labels"]

# LogME's released code adds this to the fixed-point denominators: it keeps alpha and beta finite when a target is
# orthogonal to (or exactly fitted by) the features. It is applied to features rescaled to unit mean squared row
# norm, so it acts at one relative level and LogME stays exactly invariant to the features' scale.
_LOGME_EPS = 1e-5
# The updates crawl when the signal is weak (alpha/beta grows by a few % per step for hundreds of steps); the
# released code's 11 steps can leave the evidence 0.05 short there. Each step costs O(rank * C), so iterate on.
_LOGME_TOL = 1e-7  # relative change of alpha/beta
_LOGME_MAX_ITER = 1000
_RANK_RTOL = 1e-10  # Gram eigenvalues below this fraction of the largest are round-off, treated as zero
_GBC_VAR_FLOOR = 1e-8  # relative to the mean feature variance, so GBC stays invariant to the features' scale


# ------------------------------------------------------------------------------------------------------ LogME
def _spectrum(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left singular vectors U (N, r) and squared singular values (r,) of F, dropping round-off-level ones.

    Eigen-decomposes the smaller Gram matrix (F F^T when N <= D, F^T F otherwise), O(N D min(N, D)).
    """
    n, d = f.shape
    sigma, vecs = np.linalg.eigh(f @ f.T if n <= d else f.T @ f)
    if sigma.max() <= 0:
        raise ValueError("features are all zero; check the feature extraction")
    keep = sigma > _RANK_RTOL * sigma.max()
    sigma = sigma[keep]
    u = vecs[:, keep] if n <= d else (f @ vecs[:, keep]) / np.sqrt(sigma)
    return u, sigma


def _logme_moments(t: np.ndarray, sigma: np.ndarray, x2: np.ndarray, outside: np.ndarray) -> tuple[np.ndarray, ...]:
    """gamma, |m|^2 and |y - F m|^2 for t = alpha / beta, in the SVD basis (columns are target classes)."""
    shrink = t / (sigma + t)  # fraction of each singular direction the posterior mean does not explain
    gamma = (sigma / (sigma + t)).sum(axis=0)
    m2 = (sigma * x2 / (sigma + t) ** 2).sum(axis=0)
    res2 = (x2 * shrink**2).sum(axis=0) + outside
    return gamma, m2, res2


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME: mean per-sample log marginal evidence of a Bayesian linear model from features to one-hot labels.

    You, Liu, Wang, Long (2021), "LogME: Practical Assessment of Pre-trained Models for Transfer Learning", ICML
    2021, arXiv:2102.11005. For each class, the one-vs-rest target y is modelled as y = F w + noise with
    w ~ N(0, I/alpha), noise ~ N(0, I/beta); alpha and beta maximise the evidence by MacKay's fixed-point updates,
    computed on the SVD of F so all classes share one decomposition. Directions of R^D outside the span of F
    (N < D) enter the log-determinant as log(alpha), so zero-padding the features leaves the score unchanged.

    Args:
        features: (N, D) frozen features of the target images (no centring, as in the paper).
        labels: (N,) integer labels 0..C-1.

    Returns:
        Evidence per sample, averaged over classes; higher means more transferable.
    """
    f = _as_features(features)
    y, counts = _as_labels(labels, n=len(f))
    n, d = f.shape
    targets = _one_hot(y, len(counts))
    u, sigma = _spectrum(f)
    x2 = (u.T @ targets) ** 2
    outside = np.maximum((targets**2).sum(axis=0) - x2.sum(axis=0), 0.0)  # energy of y outside span(F)
    sigma = sigma[:, None] / (sigma.sum() / n)  # rescale F to unit mean squared row norm (see _LOGME_EPS)
    alpha, beta = np.ones(len(counts)), np.ones(len(counts))
    for _ in range(_LOGME_MAX_ITER):
        t = alpha / beta
        gamma, m2, res2 = _logme_moments(t, sigma, x2, outside)
        alpha, beta = gamma / (m2 + _LOGME_EPS), (n - gamma) / (res2 + _LOGME_EPS)
        if np.all(np.abs(alpha / beta - t) <= _LOGME_TOL * t):
            break
    _, m2, res2 = _logme_moments(alpha / beta, sigma, x2, outside)
    log_det = np.log(alpha + beta * sigma).sum(axis=0) + (d - len(sigma)) * np.log(alpha)
    evidence = (d * np.log(alpha) + n * np.log(beta) - log_det - beta * res2 - alpha * m2
                - n * np.log(2 * np.pi)) / 2
    return float(np.mean(evidence / n))


# --------------------------------------------------------------------------------------- source-label scores
def leep(source_probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP: log expected empirical prediction of the pretrained head re-mapped to the target classes.

    Nguyen, Hassner, Seeger, Archambeau (2020), "LEEP: A New Measure to Evaluate Transferability of Learned
    Representations", ICML 2020, arXiv:2002.12462. With theta_i the source softmax of image i,
    P(y, z) = mean_i theta_iz [y_i = y], P(y | z) = P(y, z) / P(z), and
    LEEP = mean_i log sum_z P(y_i | z) theta_iz.

    Args:
        source_probs: (N, Z) softmax of the pretrained classifier (e.g. Z = 1000 ImageNet classes).
        labels: (N,) integer target labels 0..C-1.

    Returns:
        A log-likelihood, <= 0; 0 when source predictions determine the target label.
    """
    theta = _as_probs(source_probs)
    y, counts = _as_labels(labels, n=len(theta))
    joint = _one_hot(y, len(counts)).T @ theta / len(y)  # (C, Z)
    marginal = joint.sum(axis=0)
    # A source class that never gets probability mass has no conditional; its theta is 0 so its value is moot.
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    expected = (theta * conditional[y]).sum(axis=1)
    return float(np.mean(np.log(expected)))


def nce(source_labels: np.ndarray, labels: np.ndarray) -> float:
    """Negative conditional entropy -H(Y | Z) of target labels Y given the source head's hard predictions Z.

    Tran, Nguyen, Hassner (2019), "Transferability and Hardness of Supervised Classification Tasks", ICCV 2019,
    arXiv:1908.08142.

    Args:
        source_labels: (N,) integer argmax of the pretrained head (any integer ids; only equality matters).
        labels: (N,) integer target labels 0..C-1.

    Returns:
        -H(Y | Z) in nats, in [-log C, 0]; 0 when Z determines Y.
    """
    z = np.asarray(source_labels)
    if z.ndim != 1 or not np.issubdtype(z.dtype, np.integer):
        raise ValueError(f"source_labels must be a 1-D integer array (argmax of the source head); got dtype "
                         f"{z.dtype}, shape {z.shape}")
    y, counts = _as_labels(labels, n=len(z))
    _, z = np.unique(z, return_inverse=True)
    joint = np.zeros((int(z.max()) + 1, len(counts)))
    np.add.at(joint, (z, y), 1.0 / len(y))
    # Every row of joint is a source label that occurred, so its marginal is > 0.
    return float(xlogy(joint, joint / joint.sum(axis=1, keepdims=True)).sum())


def prediction_entropy(source_probs: np.ndarray) -> float:
    """Mean Shannon entropy of the pretrained head's predictions, divided by log Z (a shoulders heuristic).

    Low values mean the backbone confidently recognises ImageNet-like content in the images; values near 1 mean
    the images look like nothing it was trained on (sketches, spectrograms, medical scans).

    Args:
        source_probs: (N, Z) softmax of the pretrained classifier.

    Returns:
        A value in [0, 1]: 0 when every prediction is one-hot, 1 when every prediction is uniform.
    """
    theta = _as_probs(source_probs)
    entropy = -xlogy(theta, theta).sum(axis=1)
    return float(np.clip(entropy.mean() / np.log(theta.shape[1]), 0.0, 1.0))


# ------------------------------------------------------------------------------------------- feature scores
def h_score(features: np.ndarray, labels: np.ndarray, shrinkage: float | None = None) -> float:
    """H-score tr(cov(f)^-1 cov(E[f | y])) with a shrinkage-regularised feature covariance.

    Bao, Li, Huang, Zhang, Zheng, Zamir, Guibas (2019), "An Information-Theoretic Approach to Transferability in
    Task Transfer Learning", ICIP 2019. Regularised form from Ibrahim, Ponomareva, Mazumder (2022), "Newer is not
    always better: Rethinking transferability metrics, their peculiarities, stability and performance", ECML-PKDD
    2022, arXiv:2110.06893: cov(f) is shrunk to (1 - s) cov + s tr(cov)/D I and the class-mean covariance scaled
    by (1 - s). Without shrinkage a pseudo-inverse of a rank-deficient cov (N < D) makes every task look separable.

    Args:
        features: (N, D) frozen features.
        labels: (N,) integer labels 0..C-1.
        shrinkage: s in [0, 1]; None estimates it by Ledoit-Wolf; 0 gives the original H-score (pseudo-inverse).

    Returns:
        A value in [0, C - 1] (the between-class share of variance summed over discriminant directions).
    """
    f = _as_features(features)
    y, counts = _as_labels(labels, n=len(f))
    f = f - f.mean(axis=0)
    n, d = f.shape
    if shrinkage is None:
        shrinkage = float(ledoit_wolf_shrinkage(f, assume_centered=True))
    elif not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must be in [0, 1] or None (Ledoit-Wolf); got {shrinkage}")
    cov = f.T @ f / n
    class_means = _one_hot(y, len(counts)).T @ f / counts[:, None]  # (C, D); cov(E[f|y]) = M^T diag(p) M
    if shrinkage > 0:
        cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / d * np.eye(d)
        solved = solve(cov, class_means.T, assume_a="pos")  # (D, C) = cov^-1 M^T
    else:
        solved = np.linalg.pinv(cov, hermitian=True) @ class_means.T
    # tr(cov^-1 M^T diag(p) M) = sum_c p_c m_c . (cov^-1 m_c), without forming a D x D product.
    return float((1 - shrinkage) * np.sum(counts / n * np.einsum("cd,dc->c", class_means, solved)))


def _pca(f: np.ndarray, n_components: int | None) -> np.ndarray:
    """Projects onto the top principal components; None, or at least the rank available, keeps the features."""
    if n_components is None:
        return f
    if n_components < 1:
        raise ValueError(f"n_components must be >= 1 or None; got {n_components}")
    k = min(n_components, f.shape[0] - 1)  # N samples span at most N - 1 centred directions
    if k >= f.shape[1]:
        return f
    return PCA(n_components=k, svd_solver="full").fit_transform(f)


def gbc(features: np.ndarray, labels: np.ndarray, n_components: int | None = 64,
        covariance: Literal["diagonal", "spherical"] = "diagonal") -> float:
    """GBC: minus the summed Bhattacharyya coefficients between per-class Gaussians of the features.

    Pándy, Agostinelli, Uijlings, Ferrari, Mensink (2022), "Transferability Estimation using Bhattacharyya Class
    Separability", CVPR 2022, arXiv:2111.12780. GBC = -sum_{i != j} BC(c_i, c_j) over ordered class pairs (as in
    the paper and its code), BC = exp(-D_B) with D_B the Bhattacharyya distance of two diagonal Gaussians.
    The spherical option uses the full determinant (sigma^K); the released code adds its log term only once.

    Args:
        features: (N, D) frozen features.
        labels: (N,) integer labels 0..C-1, at least 2 samples per class.
        n_components: PCA dimensions fitted on these features first (the paper uses 64); None keeps all.
        covariance: "diagonal" per-dimension class variances, or "spherical" one variance per class.

    Returns:
        A value in [-C (C - 1), 0]; close to 0 when classes do not overlap.
    """
    if covariance not in ("diagonal", "spherical"):
        raise ValueError(f"covariance must be 'diagonal' or 'spherical'; got {covariance!r}")
    f = _as_features(features)
    y, counts = _as_labels(labels, n=len(f), min_per_class=2)
    f = _pca(f, n_components)
    one_hot = _one_hot(y, len(counts))
    means = one_hot.T @ f / counts[:, None]
    var = one_hot.T @ (f - means[y]) ** 2 / counts[:, None]
    var = np.maximum(var, _GBC_VAR_FLOOR * max(float(f.var(axis=0).mean()), np.finfo(np.float64).tiny))
    if covariance == "spherical":
        var = np.repeat(var.mean(axis=1, keepdims=True), f.shape[1], axis=1)
    log_var = np.log(var)
    total = 0.0
    for i in range(len(counts)):  # one row of class pairs at a time keeps memory at O(C K), not O(C^2 K)
        avg = (var[i] + var) / 2
        distance = (((means[i] - means) ** 2 / avg).sum(axis=1) / 8
                    + (np.log(avg) - (log_var[i] + log_var) / 2).sum(axis=1) / 2)
        coefficients = np.exp(-distance)
        total += coefficients.sum() - coefficients[i]
    return float(-total)


def linear_probe_accuracy(features: np.ndarray, labels: np.ndarray, seed: int = 0, folds: int = 3,
                          max_components: int = 128) -> float:
    """Cross-validated accuracy of logistic regression on the frozen features (a cheap linear probe).

    The standard linear evaluation of frozen representations, e.g. Kornblith, Shlens, Le (2019), "Do Better
    ImageNet Models Transfer Better?", CVPR 2019, arXiv:1805.08974. Features are standardised and reduced by PCA
    to ``max_components`` dims inside each fold, which keeps N <= ~1000, D <= 1280 at about a second.

    Args:
        features: (N, D) frozen features.
        labels: (N,) integer labels 0..C-1, at least 2 samples per class.
        seed: fold shuffling and randomised PCA seed.
        folds: stratified folds, reduced to the smallest class size when that is smaller.
        max_components: PCA dimensions; features with at most this many dims are not reduced.

    Returns:
        Mean held-out accuracy in [0, 1]; chance is about the largest class frequency.
    """
    f = _as_features(features)
    y, counts = _as_labels(labels, n=len(f), min_per_class=2)
    if folds < 2:
        raise ValueError(f"folds must be >= 2; got {folds}")
    folds = min(folds, int(counts.min()))
    steps: list[object] = [StandardScaler()]
    n_train = len(y) - int(np.ceil(len(y) / folds))
    k = min(max_components, n_train)
    if f.shape[1] > k:
        steps.append(PCA(n_components=k, svd_solver="randomized", random_state=seed))
    model = make_pipeline(*steps, LogisticRegression(max_iter=1000))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(model, f, y, cv=splitter).mean())


# ------------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class ScoreSpec:
    """A registered score and what calling it requires."""

    name: str
    fn: Callable[..., float]  # fn(input, labels) -> float, or fn(input) when needs_labels is False
    needs: Needs  # which measured input the first argument is
    higher_is_better: bool  # direction, so a ranking never needs to know the score
    citation: str
    needs_labels: bool = True  # prediction_entropy describes the images alone

    def __post_init__(self) -> None:
        if self.needs not in ("features", "probs", "source_labels"):
            raise ValueError(f"ScoreSpec.needs must be 'features', 'probs' or 'source_labels'; got {self.needs!r}")


SCORES: Registry[ScoreSpec] = Registry("score", hint="see shoulders.advisor.list_scores()")


def register_score(spec: ScoreSpec) -> ScoreSpec:
    """Adds ``spec`` to :data:`SCORES`; a name already registered raises ``ValueError``."""
    return SCORES.register(spec.name, spec)


for _spec in (
    ScoreSpec("logme", logme, "features", True, "You et al., ICML 2021, arXiv:2102.11005"),
    ScoreSpec("h_score", h_score, "features", True, "Bao et al., ICIP 2019; shrinkage: Ibrahim et al., "
              "ECML-PKDD 2022, arXiv:2110.06893"),
    ScoreSpec("gbc", gbc, "features", True, "Pándy et al., CVPR 2022, arXiv:2111.12780"),
    ScoreSpec("linear_probe", linear_probe_accuracy, "features", True,
              "linear evaluation, e.g. Kornblith et al., CVPR 2019, arXiv:1805.08974"),
    ScoreSpec("leep", leep, "probs", True, "Nguyen et al., ICML 2020, arXiv:2002.12462"),
    ScoreSpec("prediction_entropy", prediction_entropy, "probs", False, "shoulders heuristic", needs_labels=False),
    ScoreSpec("nce", nce, "source_labels", True, "Tran et al., ICCV 2019, arXiv:1908.08142"),
):
    register_score(_spec)


def list_scores() -> list[str]:
    """Names of the registered scores."""
    return SCORES.names()


def compute_scores(*, labels: np.ndarray, features: np.ndarray | None = None, source_probs: np.ndarray | None = None,
                   source_labels: np.ndarray | None = None, names: list[str] | None = None) -> dict[str, float]:
    """Computes registered scores from whichever inputs are given.

    Args:
        labels: (N,) integer target labels 0..C-1.
        features: (N, D) frozen features, for the "features" scores.
        source_probs: (N, Z) pretrained-head softmax, for the "probs" scores; its argmax feeds "source_labels".
        source_labels: (N,) pretrained-head argmax, when only the hard predictions are at hand.
        names: scores to compute; None computes every score whose input is given.

    Returns:
        Score name -> value, in registry order (or the order of ``names``).
    """
    n = len(_as_labels(labels)[0])
    for argument, value in (("features", features), ("source_probs", source_probs), ("source_labels", source_labels)):
        if value is not None and len(value) != n:
            raise ValueError(f"{argument} has {len(value)} samples but labels has {n}")
    inputs: dict[str, np.ndarray | None] = {"features": features, "probs": source_probs,
                                            "source_labels": source_labels}
    if source_labels is None and source_probs is not None:
        inputs["source_labels"] = np.asarray(source_probs).argmax(axis=1)
    arguments = {"features": "features", "probs": "source_probs", "source_labels": "source_labels or source_probs"}
    if names is None:
        specs = [SCORES.get(name) for name in SCORES if inputs[SCORES.get(name).needs] is not None]
        if not specs:
            raise ValueError("compute_scores needs at least one of features, source_probs, source_labels")
    else:
        specs = [SCORES.get(name) for name in names]
        for spec in specs:
            if inputs[spec.needs] is None:
                raise ValueError(f"score {spec.name!r} needs {arguments[spec.needs]}; pass it to compute_scores")
    return {spec.name: spec.fn(inputs[spec.needs], labels) if spec.needs_labels else spec.fn(inputs[spec.needs])
            for spec in specs}
