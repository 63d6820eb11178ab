"""Why a prediction was made, and sturdier predictions: class-activation heatmaps and test-time augmentation.

Heatmaps come from the ``grad-cam`` package (``pip install "shoulders[explain]"``), imported only when one is
asked for; test-time augmentation needs nothing beyond torch, and its default rule (``tta_rule``) not even that.
Names are imported on first use (``lazy_loader``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "gradcam": ["CAM_METHODS", "crop_box", "explain_images", "heatmaps", "overlay", "resolve_targets",
                "target_layer", "to_image"],
    "tta": ["VIEWS", "TTAModel", "View", "default_views", "list_views", "merge_views", "resolve_views"],
    "tta_rule": ["TTADecision", "tta_decision"],
})

if TYPE_CHECKING:
    from shoulders.explain.gradcam import (CAM_METHODS, crop_box, explain_images, heatmaps, overlay,
                                           resolve_targets, target_layer, to_image)
    from shoulders.explain.tta import VIEWS, TTAModel, View, default_views, list_views, merge_views, resolve_views
    from shoulders.explain.tta_rule import TTADecision, tta_decision
