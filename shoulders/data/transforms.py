"""Preprocessing from the backbone's own pretrained config; the training presets live in ``augment``.

Mean, std, interpolation and crop come from timm's ``resolve_data_config`` for the model, never from constants:
the EfficientNet-Lite weights, for instance, expect mean = std = 0.5, not ImageNet's numbers.
"""

from __future__ import annotations

from typing import Any

import timm.data
import torch

from shoulders.data.augment import AUGMENTATIONS, Transform, list_augmentations, timm_kwargs


def resolve_data_config(
    model: torch.nn.Module, image_size: int | None = None, crop_pct: float | None = None
) -> dict[str, Any]:
    """The model's preprocessing (timm's pretrained config), optionally at another size or crop.

    Args:
        model: a timm model (its ``pretrained_cfg`` decides mean, std, interpolation, crop).
        image_size: square input size to use instead of the model's default (``None`` keeps it).
        crop_pct: fraction of the resized image kept by the center crop (``None`` keeps the model's).

    Returns:
        A JSON-able dict with keys input_size ([C, H, W]), interpolation, mean, std, crop_pct, crop_mode.
    """
    cfg = timm.data.resolve_data_config(model=model)
    if image_size is not None:
        if image_size < 1:
            raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
        cfg["input_size"] = (cfg["input_size"][0], image_size, image_size)
    if crop_pct is not None:
        if not 0.0 < crop_pct <= 1.0:
            raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
        cfg["crop_pct"] = crop_pct
    return {
        "input_size": [int(v) for v in cfg["input_size"]],
        "interpolation": str(cfg["interpolation"]),
        "mean": [float(v) for v in cfg["mean"]],
        "std": [float(v) for v in cfg["std"]],
        "crop_pct": float(cfg["crop_pct"]),
        "crop_mode": str(cfg.get("crop_mode", "center")),
    }


def _eval_transform(cfg: dict[str, Any]) -> Transform:
    # Resize the shorter side to size / crop_pct, center crop, to tensor, normalise once; small images
    # (e.g. 28 px) are upsampled by the same resize.
    return timm.data.create_transform(
        **timm_kwargs(cfg), crop_pct=cfg["crop_pct"], crop_mode=cfg["crop_mode"], is_training=False
    )


def create_transforms(
    data_config: dict[str, Any], augment: str = "none", hflip: bool = False
) -> tuple[Transform, Transform]:
    """Training and evaluation transforms (PIL RGB image → normalised tensor) for a resolved data config.

    Args:
        data_config: from :func:`resolve_data_config`.
        augment: a preset name from :func:`list_augmentations`; it changes only the training transform.
        hflip: add random horizontal flips to the training transform.

    Returns:
        ``(train_transform, eval_transform)``.
    """
    builder = AUGMENTATIONS.get(augment)
    eval_transform = _eval_transform(data_config)
    return builder(data_config, hflip, eval_transform), eval_transform


__all__ = ["create_transforms", "list_augmentations", "resolve_data_config"]
