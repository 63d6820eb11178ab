"""Advisor: measurements of a target dataset against a backbone (transferability and similarity scores)."""

from shoulders.advisor.scores import (
    SCORES,
    ScoreSpec,
    compute_scores,
    feature_distribution_distance,
    gbc,
    h_score,
    leep,
    linear_probe_accuracy,
    list_scores,
    logme,
    nce,
    prediction_entropy,
    register_score,
)

__all__ = [
    "SCORES",
    "ScoreSpec",
    "compute_scores",
    "feature_distribution_distance",
    "gbc",
    "h_score",
    "leep",
    "linear_probe_accuracy",
    "list_scores",
    "logme",
    "nce",
    "prediction_entropy",
    "register_score",
]
