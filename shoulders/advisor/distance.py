"""How far a dataset's features lie from the pretraining data's: the advisor's similarity measure."""

from __future__ import annotations

import numpy as np

from shoulders.advisor._arrays import _as_features


def feature_distribution_distance(features: np.ndarray, reference_mean: np.ndarray,
                                  reference_cov_diag: np.ndarray) -> float:
    """Diagonal Fréchet distance between the features and reference statistics, in reference-std units per dim.

    The Fréchet distance of Gaussians as used by FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update
    Rule Converge to a Local Nash Equilibrium", NeurIPS 2017, arXiv:1706.08500), restricted to diagonal
    covariances and standardised by the reference: mean over dims of
    ((mu - mu_ref)^2 + (sd - sd_ref)^2) / var_ref, so it does not grow with D.

    Args:
        features: (N, D) pooled features of the target images, N >= 2.
        reference_mean: (D,) feature mean over natural photos (e.g. ImageNet validation images).
        reference_cov_diag: (D,) positive per-dimension feature variance of the same photos.

    Returns:
        A value >= 0: 0 for matching statistics; 1 is e.g. every dim's mean shifted by one reference std. Sampling
        noise adds about (1 + 1/2) var/var_ref / N.
    """
    f = _as_features(features)
    mu_ref = np.asarray(reference_mean, dtype=np.float64)
    var_ref = np.asarray(reference_cov_diag, dtype=np.float64)
    if len(f) < 2:
        raise ValueError("feature_distribution_distance needs at least 2 samples")
    if mu_ref.shape != (f.shape[1],) or var_ref.shape != (f.shape[1],):
        raise ValueError(f"reference_mean and reference_cov_diag must have shape ({f.shape[1]},); got "
                         f"{mu_ref.shape} and {var_ref.shape}")
    if not (np.all(np.isfinite(mu_ref)) and np.all(np.isfinite(var_ref)) and var_ref.min() > 0):
        raise ValueError("reference statistics must be finite and reference_cov_diag strictly positive")
    shift = (f.mean(axis=0) - mu_ref) ** 2
    spread = (f.std(axis=0) - np.sqrt(var_ref)) ** 2
    return float(np.mean((shift + spread) / var_ref))
