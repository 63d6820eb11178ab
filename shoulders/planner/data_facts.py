"""What the planner needs to know about the data: how many images, classes, how large they natively are.

The native size bounds how much resolution can add: an 8×8 digit upsampled to 224 px carries no more information
than at 64 px, only a scale closer to what the pretrained features expect. Sizes are read from the arrays, or from
the image headers of a sample of files (PIL reads the header only, no decoding).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..data import DataSplits, Samples

SIZE_SAMPLE = 200  # file headers read to estimate the native size: the median moves little beyond this


@dataclass(frozen=True)
class NativeSize:
    """The shorter side of the images in pixels: median and spread over the measured images."""

    median: float
    p10: float
    p90: float
    min: int
    max: int
    measured: int  # images looked at

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DataFacts:
    """The data as the planner sees it (training pool = train + validation; test counted for its cost)."""

    train_images: int
    val_images: int
    test_images: int
    classes: int
    per_class: float  # median training-pool images per class
    native: NativeSize
    quadrant: int  # the advisor's cell of the size-similarity matrix (1-4)
    similarity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "native": self.native.to_dict()}


def native_size(samples: Samples, *, sample: int = SIZE_SAMPLE, seed: int = 0) -> NativeSize:
    """The images' shorter side: every array image, or the headers of up to ``sample`` files (seeded)."""
    if len(samples) == 0:
        raise ValueError("no images to measure: the training split is empty")
    if samples.arrays is not None:
        sides = np.full(len(samples), min(samples.arrays.shape[1:3]), dtype=np.int64)
    else:
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(samples), size=min(sample, len(samples)), replace=False)
        sides = np.array([_short_side(samples.paths[i]) for i in idx], dtype=np.int64)  # type: ignore[index]
        sides = sides[sides > 0]
        if sides.size == 0:
            raise ValueError("none of the sampled image files could be read to measure their size")
    return NativeSize(median=float(np.median(sides)), p10=float(np.percentile(sides, 10)),
                      p90=float(np.percentile(sides, 90)), min=int(sides.min()), max=int(sides.max()),
                      measured=int(sides.size))


def _short_side(path: str) -> int:
    try:
        with Image.open(path) as img:
            return min(img.size)
    except (OSError, ValueError):
        return 0  # unreadable files are the data scan's business; they do not count here


def data_facts(splits: DataSplits, *, quadrant: int, similarity: float | None = None, seed: int = 0) -> DataFacts:
    """:class:`DataFacts` of prepared splits, with the advisor's quadrant."""
    train, val, test = splits.train, splits.val, splits.test
    labels = np.concatenate([train.labels] + ([val.labels] if val is not None else []))
    counts = np.bincount(labels, minlength=len(splits.classes))
    return DataFacts(train_images=len(train), val_images=len(val) if val is not None else 0,
                     test_images=len(test) if test is not None else 0, classes=len(splits.classes),
                     per_class=float(np.median(counts)), native=native_size(train, seed=seed), quadrant=quadrant,
                     similarity=similarity)
