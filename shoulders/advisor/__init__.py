"""Advisor: measurements of a target dataset against a backbone (transferability and similarity scores), its
place in the size-similarity matrix, and the training plan that follows (``advise``)."""

from shoulders.advisor.advise import Advice, BackboneScore, Measurement, advise, advise_splits, rank_backbones
from shoulders.advisor.plan import (
    LARGE_PER_CLASS,
    QUADRANTS,
    Plan,
    Quadrant,
    default_plan,
    place,
    plan_for_quadrant,
)
from shoulders.advisor.rules import SIMILARITY_THRESHOLD, SizeFigures, choose_depth, similarity_from_statistics

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
    "Advice",
    "BackboneScore",
    "LARGE_PER_CLASS",
    "Measurement",
    "Plan",
    "QUADRANTS",
    "Quadrant",
    "SIMILARITY_THRESHOLD",
    "SizeFigures",
    "advise",
    "advise_splits",
    "choose_depth",
    "default_plan",
    "place",
    "plan_for_quadrant",
    "rank_backbones",
    "similarity_from_statistics",
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
