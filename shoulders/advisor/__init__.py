"""Advisor: measurements of a target dataset against a backbone (transferability and similarity scores), its
place in the size-similarity matrix, and the training plan that follows (``advise``).

Names are imported on first use (``lazy_loader``): the plan (``advisor.plan``) is needed by every run, the
measurements and scores (scikit-learn, SciPy) only when the advisor actually measures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "advise": ["Advice", "BackboneScore", "Measurement", "advise", "advise_splits", "rank_backbones"],
    "plan": ["LARGE_PER_CLASS", "QUADRANTS", "Plan", "Quadrant", "default_plan", "place",
             "plan_for_quadrant"],
    "rules": ["SIMILARITY_THRESHOLD", "SizeFigures", "choose_depth", "similarity_from_statistics"],
    "scores": ["SCORES", "ScoreSpec", "compute_scores", "feature_distribution_distance", "gbc", "h_score", "leep",
               "linear_probe_accuracy", "list_scores", "logme", "nce", "prediction_entropy", "register_score"],
})

if TYPE_CHECKING:
    from shoulders.advisor.advise import Advice, BackboneScore, Measurement, advise, advise_splits, rank_backbones
    from shoulders.advisor.plan import LARGE_PER_CLASS, QUADRANTS, Plan, Quadrant, default_plan, place, plan_for_quadrant
    from shoulders.advisor.rules import SIMILARITY_THRESHOLD, SizeFigures, choose_depth, similarity_from_statistics
    from shoulders.advisor.scores import (SCORES, ScoreSpec, compute_scores, feature_distribution_distance, gbc,
                                          h_score, leep, linear_probe_accuracy, list_scores, logme, nce,
                                          prediction_entropy, register_score)
