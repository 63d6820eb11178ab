"""Preprocessing from the backbone's own pretrained config, and training augmentation presets.

Mean, std, interpolation and crop come from timm's ``resolve_data_config`` for the model, never from constants:
the EfficientNet-Lite weights, for instance, expect mean = std = 0.5, not ImageNet's numbers.
"""

from __future__ import annotations

from typing import Any, Callable

import timm.data
import torch
from torchvision import transforms as T

from shoulders._registry import Registry

Transform = Callable[[Any], torch.Tensor]
# A preset builds the training transform from the resolved data config and whether to flip horizontally.
AugmentationBuilder = Callable[[dict[str, Any], bool, Transform], Transform]

AUGMENTATIONS: Registry[AugmentationBuilder] = Registry(
    "augmentation", hint="see shoulders.data.list_augmentations()"
)


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


def _timm_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config as keyword arguments for ``timm.data.create_transform`` (tuples, as timm expects)."""
    return {
        "input_size": tuple(cfg["input_size"]),
        "interpolation": cfg["interpolation"],
        "mean": tuple(cfg["mean"]),
        "std": tuple(cfg["std"]),
    }


def _eval_transform(cfg: dict[str, Any]) -> Transform:
    # Resize the shorter side to size / crop_pct, center crop, to tensor, normalise once; small images
    # (e.g. 28 px) are upsampled by the same resize.
    return timm.data.create_transform(
        **_timm_kwargs(cfg), crop_pct=cfg["crop_pct"], crop_mode=cfg["crop_mode"], is_training=False
    )


@AUGMENTATIONS.decorator("none")
def _none(cfg: dict[str, Any], hflip: bool, eval_transform: Transform) -> Transform:
    """Training sees exactly what evaluation sees (plus optional flips)."""
    return T.Compose([T.RandomHorizontalFlip(), eval_transform]) if hflip else eval_transform


@AUGMENTATIONS.decorator("light")
def _light(cfg: dict[str, Any], hflip: bool, eval_transform: Transform) -> Transform:
    """Mild random crops and colour jitter; no flips unless asked, since they hurt orientation-bearing data."""
    return timm.data.create_transform(
        **_timm_kwargs(cfg), is_training=True, scale=(0.7, 1.0), ratio=(3 / 4, 4 / 3),
        hflip=0.5 if hflip else 0.0, color_jitter=0.1, re_prob=0.0,
    )


@AUGMENTATIONS.decorator("strong")
def _strong(cfg: dict[str, Any], hflip: bool, eval_transform: Transform) -> Transform:
    """Wider crops, RandAugment and random erasing: for larger datasets or long fine-tunes."""
    return timm.data.create_transform(
        **_timm_kwargs(cfg), is_training=True, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3),
        hflip=0.5 if hflip else 0.0, auto_augment="rand-m9-mstd0.5-inc1", re_prob=0.25,
    )


def list_augmentations() -> list[str]:
    """Names of the augmentation presets accepted by :func:`create_transforms`."""
    return AUGMENTATIONS.names()


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
