"""Small datasets that ship with installable packages, for the demo, tests and benchmarks (no downloads).

- digits: scikit-learn's 1797 handwritten digits, 8×8.
- Fashion-MNIST: the Debian package ``dataset-fashion-mnist`` (gzipped IDX files).
- photos: random crops of scikit-image's sample photographs, one class per photograph.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from shoulders.data.images import safe_dirname

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
_FASHION_FILES = {"train": "train", "test": "t10k"}  # the files' own prefix for each split

# scikit-image photos that load without a download (see FINDINGS); each becomes one class.
PHOTO_NAMES = ("astronaut", "camera", "chelsea", "coffee", "rocket", "stereo_motorcycle")


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's digits as uint8 images.

    Returns:
        ``(X, y, classes)``: X (1797, 8, 8) uint8 scaled from 0..16 to 0..255, y int64, classes "0".."9".
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return images, digits.target.astype(np.int64), [str(i) for i in range(10)]


def _fashion_paths(split: str) -> tuple[Path, Path]:
    if split not in _FASHION_FILES:
        raise ValueError(f"Fashion-MNIST split must be 'train' or 'test', got {split!r}")
    prefix = Path(FASHION_MNIST_DIR) / _FASHION_FILES[split]
    return Path(f"{prefix}-images-idx3-ubyte.gz"), Path(f"{prefix}-labels-idx1-ubyte.gz")


def fashion_mnist_available() -> bool:
    """True when the Debian package's files are present."""
    return all(p.is_file() for split in _FASHION_FILES for p in _fashion_paths(split))


def _read_idx(path: Path, expected_dims: int) -> np.ndarray:
    """Reads a gzipped IDX file of unsigned bytes: magic (0, 0, 0x08, ndim), ndim big-endian int32 sizes, data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = np.frombuffer(raw, dtype=">u1", count=4)
    if magic[0] != 0 or magic[1] != 0 or magic[2] != 0x08 or magic[3] != expected_dims:
        raise ValueError(f"{path} is not an IDX file of uint8 with {expected_dims} dimension(s)")
    dims = np.frombuffer(raw, dtype=">i4", count=expected_dims, offset=4).astype(np.int64)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * expected_dims)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: header says {tuple(dims)}, found {data.size} values")
    return data.reshape(tuple(dims))


def per_class_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of exactly ``per_class`` images of each label, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        if per_class > len(idx):
            raise ValueError(f"per_class={per_class} but class {label} has only {len(idx)} images")
        chosen.append(rng.choice(idx, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def load_fashion_mnist(
    split: str = "train", per_class: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Fashion-MNIST from the Debian package.

    Args:
        split: "train" (60 000 images) or "test" (the official 10 000).
        per_class: keep this many images of each class (seeded), or ``None`` for all.
        seed: seeds the ``per_class`` draw.

    Returns:
        ``(X, y, classes)``: X (N, 28, 28) uint8, y int64, the 10 official class names.

    Raises:
        FileNotFoundError: the package is not installed.
    """
    images_path, labels_path = _fashion_paths(split)
    if not (images_path.is_file() and labels_path.is_file()):
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {FASHION_MNIST_DIR}; install it with "
            "`apt-get install dataset-fashion-mnist`"
        )
    images, labels = _read_idx(images_path, 3), _read_idx(labels_path, 1).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    if per_class is not None:
        keep = per_class_subset(labels, per_class, seed)
        images, labels = images[keep], labels[keep]
    return images, labels, list(FASHION_MNIST_CLASSES)


def _random_crops(photo: np.ndarray, count: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Square crops of 35-80 % of the shorter side at random places, resized to ``size``."""
    image = Image.fromarray(photo).convert("RGB")
    short = min(image.size)
    crops = []
    for _ in range(count):
        side = int(rng.uniform(0.35, 0.8) * short)
        left = int(rng.integers(0, image.width - side + 1))
        top = int(rng.integers(0, image.height - side + 1))
        crop = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
        crops.append(np.asarray(crop))
    return crops


def load_photos_arrays(
    per_class: int = 40, size: int = 64, seed: int = 0, names: Sequence[str] = PHOTO_NAMES
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A small natural-photo classification set: random crops of scikit-image sample photos, one class each.

    Args:
        per_class: crops per photograph.
        size: side of the square crops in pixels.
        seed: seeds crop sizes and positions.
        names: ``skimage.data`` photos to use as classes.

    Returns:
        ``(X, y, classes)``: X (N, size, size, 3) uint8, y int64, classes = ``names``.
    """
    try:
        import skimage.data
    except ImportError as exc:
        raise ImportError("load_photos_arrays needs scikit-image: pip install scikit-image") from exc
    rng = np.random.default_rng(seed)
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, name in enumerate(names):
        photo = getattr(skimage.data, name)()
        photo = photo[0] if isinstance(photo, tuple) else photo  # stereo_motorcycle returns (left, right, disp)
        images.extend(_random_crops(photo, per_class, size, rng))
        labels.extend([label] * per_class)
    return np.stack(images), np.asarray(labels, dtype=np.int64), list(names)


def write_image_folder(
    x: np.ndarray, y: Sequence[int] | np.ndarray, classes: Sequence[str], out_dir: str | os.PathLike,
    fmt: str = "png",
) -> Path:
    """Writes uint8 arrays as ``out_dir/<class>/<index>.<fmt>`` (class names made safe as folder names).

    Args:
        x: (N, H, W) or (N, H, W, C) uint8 images, C in 1, 3, 4.
        y: integer labels indexing ``classes``.
        classes: class names ("T-shirt/top" is written as folder "T-shirt_top").
        out_dir: created if missing.
        fmt: image file extension understood by PIL ("png", "jpg", ...).

    Returns:
        ``out_dir`` as a ``Path``.
    """
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(f"write_image_folder needs uint8 images, got {x.dtype}; convert or use load_data first")
    folders = [safe_dirname(c) for c in classes]
    if len(set(folders)) != len(folders):
        raise ValueError(f"class names {list(classes)} collide as folder names {folders}; rename the classes")
    out = Path(out_dir)
    for folder in folders:
        (out / folder).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(x, np.asarray(y))):
        image = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
        Image.fromarray(np.ascontiguousarray(image)).save(out / folders[int(label)] / f"{i:05d}.{fmt.lower()}")
    return out
