"""What the studio's data tab shows about a data set: images per class and split, native sizes, unreadable files,
duplicates (the library's own report, :mod:`shoulders.data.duplicates`), and whether ``shoulders train`` can take
it as it stands.

Unlike :func:`shoulders.data.load_data`, the listing here is lenient: a class folder just created in the browser
and still empty, or a data set with one class so far, is a state to show, not an error.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..data import Samples, load_data
from ..data.duplicates import find_duplicates, near_duplicates_available
from ..data._readers import SPLIT_NAMES, list_csv
from ..data.images import verify_image, walk_images

COMMON_SIZES_SHOWN = 5


@dataclass(frozen=True)
class _FileFacts:
    path: str
    size: tuple[int, int] | None  # (width, height); None when unreadable
    problem: str | None


def _inspect(path: str) -> _FileFacts:
    """The library's integrity check (the reason training would give) and, for a good file, its header's size."""
    problem = verify_image(path)
    if problem is not None:
        return _FileFacts(path, None, problem)
    with Image.open(path) as img:
        return _FileFacts(path, img.size, None)


def _class_files(directory: Path) -> dict[str, list[str]]:
    """Class name → image files, for ``directory/<class>/**``; empty class folders are kept (count 0)."""
    classes = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    return {c.name: walk_images(c) for c in classes}


def list_files(source: Path) -> tuple[str, dict[str, dict[str, list[str]]]]:
    """(layout, split → class → files) of an image folder (pool or train/val/test) or a CSV ``path,label``."""
    if source.is_file() and source.suffix.lower() == ".csv":
        listing = list_csv(source)
        parts: dict[str, dict[str, list[str]]] = {}
        for split, pairs in listing.parts.items():
            for path, label in pairs:
                parts.setdefault(split, {}).setdefault(label, []).append(path)
        return "csv", parts
    if not source.is_dir():
        raise ValueError(f"{source} is neither a folder of class folders nor a .csv file; open an image folder "
                         "(DATA/<class>/*.jpg) or a CSV with columns path,label")
    splits = {SPLIT_NAMES[p.name.lower()]: p for p in source.iterdir()
              if p.is_dir() and p.name.lower() in SPLIT_NAMES}
    if "train" in splits:
        return "folders", {name: _class_files(path) for name, path in sorted(splits.items())}
    return "pool", {"all": _class_files(source)}


def _size_figures(sizes: list[tuple[int, int]]) -> dict[str, Any]:
    if not sizes:
        return {}
    array = np.asarray(sizes)
    common = Counter(f"{w}×{h}" for w, h in sizes).most_common(COMMON_SIZES_SHOWN)
    return {"min": array.min(0).tolist(), "median": np.median(array, 0).round().astype(int).tolist(),
            "max": array.max(0).tolist(), "distinct": len(set(sizes)),
            "common": [{"size": s, "count": n} for s, n in common]}


def _duplicates(parts: dict[str, dict[str, list[str]]], bad: set[str]) -> dict[str, Any]:
    """The library's duplicate report (exact copies; near copies too where ``imagehash`` is installed) over the
    readable files; a pool that is not split yet counts as the training split."""
    names = sorted({name for classes in parts.values() for name in classes})
    samples = {}
    for split, classes in parts.items():
        pairs = [(p, names.index(c)) for c, paths in classes.items() for p in paths if p not in bad]
        samples["train" if split == "all" else split] = Samples(names, [y for _, y in pairs],
                                                                 paths=[p for p, _ in pairs])
    report, _ = find_duplicates(samples, policy="keep", near=near_duplicates_available())
    return {**report.to_dict(), "summary": report.summary()}


def _readiness(source: Path) -> str | None:
    """What stops ``shoulders train`` on this source as it is, in the library's own words; ``None`` when ready."""
    try:
        load_data(source)
    except ValueError as exc:
        return str(exc)
    return None


def summarize(source: str | os.PathLike) -> dict[str, Any]:
    """Counts per class and split, native sizes, bad images, duplicate groups and readiness of ``source``.

    Raises:
        ValueError: ``source`` is not an image folder or CSV (the message says what to open instead).
    """
    source = Path(source).expanduser().resolve()
    layout, parts = list_files(source)
    files = [f for classes in parts.values() for paths in classes.values() for f in paths]
    workers = min(16, 4 * (os.cpu_count() or 1), max(1, len(files)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        facts = list(pool.map(_inspect, files, chunksize=64))
    bad = {f.path: f.problem for f in facts if f.problem is not None}
    names = sorted({name for classes in parts.values() for name in classes})
    classes = [{"name": name, "count": sum(len(parts[s].get(name, [])) for s in parts),
                "splits": {s: len(parts[s].get(name, [])) for s in parts},
                "bad": sum(1 for s in parts for p in parts[s].get(name, []) if p in bad)} for name in names]
    duplicates = _duplicates(parts, set(bad)) if len(files) > len(bad) else None
    return {"source": str(source), "layout": layout, "splits": sorted(parts), "classes": classes,
            "total": len(files), "sizes": _size_figures([f.size for f in facts if f.size is not None]),
            "bad_images": [{"path": p, "reason": r} for p, r in bad.items()],
            "duplicates": duplicates,
            "problem": _readiness(source) if files else "no images yet: add class folders with images"}
