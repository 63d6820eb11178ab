"""Training augmentation presets: a registry of names that imports nothing heavy until a preset is built.

The names are checked before any data is read (``shoulders.resolution.check_names``), so this module stays
torch-free at import; each preset imports timm's and torchvision's transforms when it builds one. Register
another preset with ``@AUGMENTATIONS.decorator("name")`` on a function ``(data_config, hflip, eval_transform)
-> transform``.
"""

from __future__ import annotations

from typing import Any, Callable

from shoulders._registry import Registry

Transform = Callable[[Any], Any]  # PIL RGB image → normalised tensor
# A preset builds the training transform from the resolved data config and whether to flip horizontally.
AugmentationBuilder = Callable[[dict[str, Any], bool, Transform], Transform]

AUGMENTATIONS: Registry[AugmentationBuilder] = Registry(
    "augmentation", hint="see shoulders.data.list_augmentations()"
)


def timm_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config as keyword arguments for ``timm.data.create_transform`` (tuples, as timm expects)."""
    return {
        "input_size": tuple(cfg["input_size"]),
        "interpolation": cfg["interpolation"],
        "mean": tuple(cfg["mean"]),
        "std": tuple(cfg["std"]),
    }


@AUGMENTATIONS.decorator("none")
def _none(cfg: dict[str, Any], hflip: bool, eval_transform: Transform) -> Transform:
    """Training sees exactly what evaluation sees (plus optional flips)."""
    from torchvision import transforms as T

    return T.Compose([T.RandomHorizontalFlip(), eval_transform]) if hflip else eval_transform


@AUGMENTATIONS.decorator("light")
def _light(cfg: dict[str, Any], hflip: bool, eval_transform: Transform) -> Transform:
    """Mild random crops and colour jitter; no flips unless asked, since they hurt orientation-bearing data."""
    import timm.data

    return timm.data.create_transform(
        **timm_kwargs(cfg), is_training=True, scale=(0.7, 1.0), ratio=(3 / 4, 4 / 3),
        hflip=0.5 if hflip else 0.0, color_jitter=0.1, re_prob=0.0,
    )


@AUGMENTATIONS.decorator("strong")
def _strong(cfg: dict[str, Any], hflip: bool, eval_transform: Transform) -> Transform:
    """Wider crops, RandAugment and random erasing: for larger datasets or long fine-tunes.

    The magnitude (9, noise 0.5) is clipped at 9 (``mmax9``): at 10 the increasing posterize keeps 0 bits, which
    Pillow refuses ("bits must be between or equal to 1 and 8"), so about one image in 600 stopped training."""
    import timm.data

    return timm.data.create_transform(
        **timm_kwargs(cfg), is_training=True, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3),
        hflip=0.5 if hflip else 0.0, auto_augment="rand-m9-mstd0.5-inc1-mmax9", re_prob=0.25,
    )


def list_augmentations() -> list[str]:
    """Names of the augmentation presets accepted by ``create_transforms``."""
    return AUGMENTATIONS.names()
