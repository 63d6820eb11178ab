"""How much of each image the evaluation's centre crop keeps: the measured rule, without torch.

timm evaluates a backbone by resizing the shorter side to ``size / crop_pct`` and cutting out the centre (0.875 for
EfficientNet-Lite0): the ImageNet convention, made for photos with a margin of background around the object and for
models trained on random crops, which see objects larger than the whole frame shows them (Touvron et al., "Fixing
the train-test resolution discrepancy", 2019). Without random-crop augmentation, training sees exactly the
evaluation's crop, so the crop only discards pixels — and small, tightly framed images (a 28 px garment whose
sleeves reach the edge) have no margin to spare. Where fine-tuning trains on the evaluation's view of small images,
the whole image is kept; everywhere else the backbone's convention stays, as measured.
"""

from __future__ import annotations

from dataclasses import dataclass

# Test-accuracy change in points of the whole image (crop_pct 1.0) over the backbone's 0.875, paired by split and
# seed, per recipe, at 64 px, from ``python benchmarks/crop.py`` (benchmarks/README.md, "The centre crop";
# results/crop.json).
MEASURED: dict[str, dict[str, list[float]]] = {
    "fine-tuning without augmentation": {"fashion-1000 (3 epochs)": [0.92, 0.34, 0.69],
                                         "fashion-100": [-0.06, 1.23, 0.14], "digits": [-0.56, 0.56]},
    "fine-tuning with random crops": {"fashion-100 (partial, light)": [-0.62, 0.07]},
    "frozen features": {"fashion-100": [-0.32, 0.14, -0.54], "digits": [0.0, -0.83, 2.5], "photos": [0.42, 0.83, 0.0]},
}
SMALL_FRACTION = 0.5  # "small": the images' median shorter side under this share of the backbone's input size


@dataclass(frozen=True)
class CropDecision:
    """The centre crop a run evaluates (and, without augmentation, trains) with, and why."""

    crop_pct: float
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"crop_pct": self.crop_pct, "reason": self.reason}


def crop_decision(user: float | None, *, backbone_crop: float, backbone_size: int, native: float | None,
                  fine_tunes: bool, augment: str | None) -> CropDecision:
    """The whole image (1.0) where fine-tuning trains small images on the evaluation's view (no augmentation);
    the backbone's ``backbone_crop`` elsewhere; the user's ``user`` always.

    Args:
        user: the user's ``crop_pct`` (``None``: not set).
        backbone_crop: the backbone's pretrained centre crop.
        backbone_size: the backbone's pretrained input size (what "small" is measured against).
        native: the training images' median shorter side in pixels (``None``: unknown, the backbone's crop).
        fine_tunes: whether pretrained blocks train (the frozen strategy's features keep the convention).
        augment: the training augmentation; any preset but ``none`` takes random crops of the whole image.
    """
    if user is not None:
        return CropDecision(user, f"crop_pct {user:g} set by the user")
    small = native is not None and native < SMALL_FRACTION * backbone_size
    if small and fine_tunes and augment == "none":
        return CropDecision(1.0, f"the whole image (no centre crop): the images are small ({native:g} px, under "
                                 f"{SMALL_FRACTION:g} x the backbone's {backbone_size} px) and training sees the "
                                 f"evaluation's view, so the backbone's {backbone_crop:g} crop would only cut object "
                                 "pixels (measured +0.65 points on Fashion-MNIST 1 000/class, 3 seeds)")
    why = ("the frozen features" if not fine_tunes else
           f"{augment} augmentation's random crops (the crop matches their scale)" if augment != "none" else
           "images large enough to have a margin" if native is not None else "the images' size unknown")
    return CropDecision(backbone_crop, f"the backbone's {backbone_crop:g} centre crop: {why}")
