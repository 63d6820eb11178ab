"""Why a prediction was made, and sturdier predictions: class-activation heatmaps and test-time augmentation.

Heatmaps come from the ``grad-cam`` package (``pip install "shoulders[explain]"``), imported only when one is
asked for; test-time augmentation needs nothing beyond torch.
"""

from shoulders.explain.gradcam import (
    CAM_METHODS,
    crop_box,
    explain_images,
    heatmaps,
    overlay,
    resolve_targets,
    target_layer,
    to_image,
)
from shoulders.explain.tta import (
    VIEWS,
    TTADecision,
    TTAModel,
    View,
    default_views,
    list_views,
    merge_views,
    resolve_views,
    tta_decision,
)

__all__ = [
    "CAM_METHODS",
    "TTADecision",
    "TTAModel",
    "VIEWS",
    "View",
    "crop_box",
    "default_views",
    "explain_images",
    "heatmaps",
    "list_views",
    "merge_views",
    "overlay",
    "resolve_targets",
    "resolve_views",
    "target_layer",
    "to_image",
    "tta_decision",
]
