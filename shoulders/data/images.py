"""Reading single images robustly: any mode PIL opens becomes RGB 8-bit, and failures become ``BadImageError``.

Everything that turns a file (or an array) into pixels goes through here, so training, prediction and the advisor
see exactly the same conversion of grayscale, 16-bit, transparent, palette and CMYK images.
"""

from __future__ import annotations

import glob
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageOps

# Extensions PIL reads that people actually keep datasets in; anything else in a folder (.txt, .csv, .DS_Store)
# is ignored silently rather than reported as a bad image.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".bmp", ".gif", ".jfif", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".pnm", ".ppm", ".tif", ".tiff", ".webp"}
)

# Background for transparent pixels: white, because most transparent images (logos, product shots, icons) are
# drawn to be seen on a white page; black would invert their apparent contrast.
_BACKGROUND = (255, 255, 255)


class BadImageError(ValueError):
    """An image file that cannot be read or decoded.

    Attributes:
        path: the offending file.
        reason: what PIL reported.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"cannot read image {self.path}: {reason}; fix or remove it, or use on_bad_image='skip'"
        )


@dataclass(frozen=True)
class BadImage:
    """A file that was skipped because it could not be read, and why."""

    path: str
    reason: str


def is_image_file(path: str | os.PathLike) -> bool:
    """True for a non-hidden file name with an image extension (hidden files are e.g. macOS ``._x.jpg`` forks)."""
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _describe_error(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def open_image(path: str | os.PathLike) -> Image.Image:
    """Opens an image file as RGB 8-bit with its EXIF orientation applied.

    Args:
        path: the image file.

    Returns:
        A fully decoded ``RGB`` image (see :func:`to_rgb` for how other modes are converted).

    Raises:
        BadImageError: the file is missing, empty, not an image, truncated or otherwise undecodable.
    """
    try:
        with Image.open(path) as img:
            img.load()  # decode now, inside the try, so truncation is reported here and not later
            img = ImageOps.exif_transpose(img)
            return to_rgb(img)
    # PIL raises a zoo of types for broken files (OSError, SyntaxError, struct.error, EOFError, IndexError,
    # DecompressionBombError...), so every failure is turned into the one error callers handle.
    except Exception as exc:  # noqa: BLE001
        raise BadImageError(path, _describe_error(exc)) from exc


def _scale_to_uint8(img: Image.Image) -> Image.Image:
    """Maps 16-bit / 32-bit / float grayscale onto 0..255 instead of letting PIL clip it at 255.

    Integer images are scaled by their container's range (16-bit → ÷257) so that brightness means the same in
    every image of a dataset; 32-bit ints and floats have no fixed range, so their values decide: up to 255 is
    kept, up to 65535 is treated as 16-bit, float in [0, 1] is ×255, anything else is min-max stretched.
    """
    values = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16"):
        scaled = values / 257.0
    else:
        lo, hi = float(values.min()), float(values.max())
        if img.mode == "F" and lo >= 0.0 and hi <= 1.0:
            scaled = values * 255.0
        elif lo >= 0.0 and hi <= 255.0:
            scaled = values
        elif lo >= 0.0 and hi <= 65535.0:
            scaled = values / 257.0
        else:
            scaled = (values - lo) * (255.0 / max(hi - lo, 1e-12))
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def to_rgb(img: Image.Image) -> Image.Image:
    """Converts a decoded image of any mode to ``RGB`` 8-bit.

    Grayscale (``1``, ``L``) is replicated to three channels; high-bit-depth grayscale is scaled, not clipped;
    alpha (``RGBA``, ``LA``, ``PA``, palette with transparency) is composited on white; ``CMYK`` and other colour
    spaces use PIL's conversion.
    """
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        return _scale_to_uint8(img).convert("RGB")
    has_alpha = "A" in img.getbands() or "a" in img.mode or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def array_to_image(array: np.ndarray) -> Image.Image:
    """Turns one uint8 image array, (H, W) or (H, W, C) with C in 1, 3, 4, into an RGB image."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    mode = {2: "L"}.get(array.ndim) or {3: "RGB", 4: "RGBA"}[array.shape[2]]
    return to_rgb(Image.fromarray(np.ascontiguousarray(array), mode=mode))


def verify_image(path: str) -> str | None:
    """Cheap integrity check (header + PIL's ``verify``, no full decode); returns the problem or ``None``."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as img:
            img.verify()
    except Exception as exc:  # noqa: BLE001 - see open_image: any failure means "bad image"
        return _describe_error(exc)
    return None


def scan_images(paths: Sequence[str]) -> list[BadImage]:
    """Verifies many files at once (threads: the work is file I/O and C code) and returns the bad ones in order."""
    if not paths:
        return []
    workers = min(16, 4 * (os.cpu_count() or 1), len(paths))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(pool.map(verify_image, paths, chunksize=64))
    return [BadImage(path, reason) for path, reason in zip(paths, reasons) if reason is not None]


def walk_images(directory: str | os.PathLike) -> list[str]:
    """All image files under ``directory`` (recursive, hidden files and folders skipped), sorted."""
    found: list[str] = []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(os.path.join(root, name) for name in files if is_image_file(name))
    return sorted(found)


def _expand_one(item: str) -> list[str]:
    if os.path.isfile(item):
        return [item]  # named explicitly: the caller asked for it, so it is kept even without an image extension
    if os.path.isdir(item):
        found = walk_images(item)
        if not found:
            raise ValueError(f"no image files in directory {item} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
        return found
    matches = sorted(glob.glob(item, recursive=True))
    found = [m for m in matches if os.path.isfile(m) and is_image_file(m)]
    for match in matches:
        if os.path.isdir(match):
            found.extend(walk_images(match))
    if not found:
        raise ValueError(f"{item!r} matches no image file; check the path or quote the glob pattern")
    return found


def collect_paths(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """Expands files, directories (recursively) and glob patterns into image paths for prediction.

    Args:
        inputs: file paths, directories, or glob patterns (``**`` allowed).

    Returns:
        A sorted, de-duplicated list of paths (normalised, not made absolute, so output stays as typed).

    Raises:
        ValueError: an input matches no image file (the message names it).
    """
    paths: set[str] = set()
    for item in inputs:
        paths.update(os.path.normpath(p) for p in _expand_one(os.fspath(item)))
    if not paths:
        raise ValueError("no input paths given; pass image files, directories or glob patterns")
    return sorted(paths)


def safe_dirname(name: str) -> str:
    """A class name made usable as one folder name: separators and odd characters → ``_``, no leading dot."""
    cleaned = "".join(c if c.isalnum() or c in "-_. +()" else "_" for c in str(name)).strip()
    cleaned = "_" + cleaned[1:] if cleaned.startswith(".") else cleaned
    return cleaned or "_"


def resolve_path(path: str, base: Path) -> str:
    """``path`` as an absolute path, relative ones taken against ``base`` (a CSV's folder)."""
    p = Path(os.path.expanduser(path))
    return os.path.abspath(p if p.is_absolute() else base / p)
