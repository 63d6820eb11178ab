"""``Samples`` (labelled images from one source) and ``DataSplits`` (train / val / test made from a source)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from PIL import Image

from shoulders.data.images import BadImage, array_to_image, open_image


def sort_class_names(names: Sequence[Any]) -> list[str]:
    """Sorted, de-duplicated class names as strings; numerically when every name is an integer (2 before 10)."""
    unique = {str(n) for n in names}
    try:
        return sorted(unique, key=int)
    except ValueError:
        return sorted(unique)


class Samples:
    """Labelled images from one source: either file paths or an in-memory uint8 array.

    Args:
        classes: class names; a label is an index into this list.
        labels: one integer label per image.
        paths: image files (file sources); exactly one of ``paths`` and ``arrays`` is given.
        arrays: uint8 images, (N, H, W) or (N, H, W, C) with C in 1, 3, 4 (array sources).
    """

    def __init__(
        self,
        classes: Sequence[str],
        labels: Sequence[int] | np.ndarray,
        paths: Sequence[str] | None = None,
        arrays: np.ndarray | None = None,
    ) -> None:
        if (paths is None) == (arrays is None):
            raise ValueError("Samples needs exactly one of paths= (image files) or arrays= (uint8 images)")
        self.classes = [str(c) for c in classes]
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.paths = None if paths is None else [str(p) for p in paths]
        self.arrays = arrays
        self._fingerprints: dict[int, str] = {}  # content keys already computed (duplicates check, feature cache)
        if arrays is not None and (arrays.dtype != np.uint8 or arrays.ndim not in (3, 4)):
            raise ValueError(
                f"Samples arrays must be uint8 (N,H,W) or (N,H,W,C), got {arrays.dtype} {arrays.shape}; "
                "pass raw arrays to load_data, which converts them"
            )
        size = len(self.paths) if self.paths is not None else len(arrays)  # type: ignore[arg-type]
        if len(self.labels) != size:
            raise ValueError(f"Samples has {size} images but {len(self.labels)} labels; they must match")
        if size and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(f"labels must lie in 0..{len(self.classes) - 1} (one per class in classes)")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        kind = "paths" if self.paths is not None else f"arrays{tuple(self.arrays.shape[1:])}"  # type: ignore[union-attr]
        return f"Samples({len(self)} images from {kind}, {len(self.classes)} classes)"

    def subset(self, indices: Sequence[int] | np.ndarray) -> Samples:
        """The images at ``indices`` (in that order), with the same class list."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if self.paths is not None:
            part = Samples(self.classes, self.labels[idx], paths=[self.paths[i] for i in idx])
        else:
            part = Samples(self.classes, self.labels[idx], arrays=self.arrays[idx])  # type: ignore[index]
        part._fingerprints = {new: self._fingerprints[int(old)] for new, old in enumerate(idx)
                              if int(old) in self._fingerprints}
        return part

    def load(self, i: int) -> Image.Image:
        """Image ``i`` as RGB 8-bit with EXIF orientation applied.

        Raises:
            BadImageError: the file passed the scan but cannot be decoded (e.g. a truncated JPEG).
        """
        if self.paths is not None:
            return open_image(self.paths[i])
        return array_to_image(self.arrays[i])  # type: ignore[index]

    def describe(self, i: int) -> str:
        """Where image ``i`` comes from, for messages and reports: its path, or ``array[i]``."""
        return self.paths[i] if self.paths is not None else f"array[{i}]"

    def fingerprint(self, i: int) -> str:
        """A content key for caches and the duplicates check: sha1 of the file's bytes, or of the array's shape and
        bytes (computed once per image and remembered)."""
        if i in self._fingerprints:
            return self._fingerprints[i]
        digest = hashlib.sha1()
        if self.paths is not None:
            with open(self.paths[i], "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        else:
            image = np.ascontiguousarray(self.arrays[i])  # type: ignore[index]
            digest.update(repr(image.shape).encode())  # same bytes, different shape → a different image
            digest.update(image.tobytes())
        self._fingerprints[i] = digest.hexdigest()
        return self._fingerprints[i]

    def counts(self) -> dict[str, int]:
        """Images per class, in class order (classes without images show 0)."""
        per_class = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, per_class)}


@dataclass
class DataSplits:
    """The splits made from one source, and how they were made.

    Attributes:
        train: training images.
        val: validation images (given by the source, or a seeded stratified part of train).
        test: test images when the source has them (``test/`` folder, CSV ``split`` column), else ``None``.
        classes: class names shared by all splits; label ``i`` is ``classes[i]``.
        split: JSON-able record of how the split was made, saved with a run so it can be reproduced.
        bad_images: files skipped because they could not be read.
        duplicates: duplicate content found across and within the splits, and what was dropped.
    """

    train: Samples
    val: Samples
    test: Samples | None
    classes: list[str]
    split: dict[str, Any] = field(default_factory=dict)
    bad_images: list[BadImage] = field(default_factory=list)
    duplicates: Any = None  # a shoulders.data.duplicates.DuplicateReport (None for splits made by hand)
