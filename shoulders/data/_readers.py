"""Readers that list what a source holds (image folders, CSV files) or convert it (arrays), before any split.

A reader only finds (path, class name) pairs per given split; checking the files, choosing classes and splitting
happen once, in :mod:`shoulders.data.sources`, so every source gets the same rules and messages.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shoulders.data.images import BadImage, is_image_file, resolve_path, walk_images
from shoulders.data.samples import Samples, sort_class_names

logger = logging.getLogger(__name__)

# Folder / CSV split names and the spellings people use for them.
SPLIT_NAMES: dict[str, str] = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass
class Listing:
    """Files a source names, before they are checked.

    Attributes:
        where: the source as the user gave it, for messages.
        method: "folders" / "csv" when the source defines its splits, "pool" when everything is one pool.
        parts: split name ("all", or "train" / "val" / "test") → (path, class name) pairs.
        missing: files the source names that do not exist (CSV rows).
    """

    where: str
    method: str
    parts: dict[str, list[tuple[str, str]]]
    missing: list[BadImage] = field(default_factory=list)


def _visible_dirs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def _list_classes(directory: Path) -> list[tuple[str, str]]:
    """(path, class) pairs from ``directory/<class>/**/<image>``; an empty class folder is an error."""
    class_dirs = _visible_dirs(directory)
    loose = [p.name for p in directory.iterdir() if p.is_file() and is_image_file(p)]
    if not class_dirs:
        if loose:
            raise ValueError(
                f"{directory} holds images but no class folders; move them into {directory}/<class name>/ "
                "(one folder per class)"
            )
        raise ValueError(f"no images found in {directory}; expected {directory}/<class name>/<image files>")
    if loose:
        logger.warning("ignoring %d image(s) directly in %s (not in a class folder)", len(loose), directory)
    pairs: list[tuple[str, str]] = []
    for class_dir in class_dirs:
        files = walk_images(class_dir)
        if not files:
            raise ValueError(f"class folder {class_dir} has no images; add images to it or remove it")
        pairs.extend((os.path.abspath(f), class_dir.name) for f in files)
    return pairs


def list_folder(root: Path) -> Listing:
    """Lists ``root/<class>/*``, or ``root/{train,val,test}/<class>/*`` when ``root`` is split into folders."""
    subdirs = _visible_dirs(root)
    split_dirs = [d for d in subdirs if d.name.lower() in SPLIT_NAMES]
    others = [d.name for d in subdirs if d.name.lower() not in SPLIT_NAMES]
    has_train = any(SPLIT_NAMES[d.name.lower()] == "train" for d in split_dirs)
    if not has_train:
        if split_dirs and not others:
            raise ValueError(
                f"{root} has {', '.join(d.name + '/' for d in split_dirs)} but no train/ folder; "
                f"add {root}/train/<class name>/ with the training images"
            )
        return Listing(str(root), "pool", {"all": _list_classes(root)})
    if others:
        raise ValueError(
            f"{root} mixes split folders ({', '.join(d.name for d in split_dirs)}) with other folders "
            f"({', '.join(others[:5])}); put every class folder inside train/ (and val/, test/)"
        )
    parts: dict[str, list[tuple[str, str]]] = {}
    for split_dir in split_dirs:
        name = SPLIT_NAMES[split_dir.name.lower()]
        if name in parts:
            raise ValueError(f"{root} has two folders for the {name} split; keep one of them")
        parts[name] = _list_classes(split_dir)
    return Listing(str(root), "folders", parts)


def _read_csv_rows(csv_path: Path) -> tuple[list[str], list[list[str]]]:
    # utf-8-sig: spreadsheets often write a byte-order mark that would otherwise stick to the first column name
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"CSV file {csv_path} is empty; it needs a header line 'path,label' and one row per image")
    return [h.strip().lower() for h in rows[0]], rows[1:]


def list_csv(csv_path: Path) -> Listing:
    """Lists a CSV with a header and columns ``path``, ``label`` and optionally ``split`` (train / val / test).

    Relative paths are taken relative to the CSV's folder, so the CSV and its images can move together.
    """
    header, rows = _read_csv_rows(csv_path)
    missing_cols = [c for c in ("path", "label") if c not in header]
    if missing_cols:
        raise ValueError(
            f"CSV file {csv_path} lacks column(s) {', '.join(missing_cols)}; its first line must be a header "
            f"naming columns path,label (and optionally split); found: {','.join(header)}"
        )
    col = {name: header.index(name) for name in ("path", "label", "split") if name in header}
    base = csv_path.parent
    parts: dict[str, list[tuple[str, str]]] = {}
    missing: list[BadImage] = []
    for line, row in enumerate(rows, start=2):
        cells = [c.strip() for c in row] + [""] * (len(header) - len(row))
        path, label = cells[col["path"]], cells[col["label"]]
        if not path or not label:
            raise ValueError(f"{csv_path}, line {line}: empty path or label; every row needs both")
        split = "all"
        if "split" in col:
            split = SPLIT_NAMES.get(cells[col["split"]].lower(), "")
            if not split:
                raise ValueError(
                    f"{csv_path}, line {line}: split {cells[col['split']]!r} is not one of train, val, test"
                )
        full = resolve_path(path, base)
        if os.path.isfile(full):
            parts.setdefault(split, []).append((full, label))
        else:
            missing.append(BadImage(full, "file not found"))
    if "split" in col and parts and "train" not in parts:
        raise ValueError(f"CSV file {csv_path} has a split column but no row with split 'train'; add training rows")
    return Listing(str(csv_path), "csv" if "split" in col else "pool", parts or {"all": []}, missing)


def _to_uint8(x: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Converts image values to uint8 0..255 and says how, so a run records what its pixels mean."""
    if x.dtype == np.uint8:
        return x, {"dtype": "uint8", "rule": "as is"}
    if x.dtype == np.bool_:
        return x.astype(np.uint8) * 255, {"dtype": "bool", "rule": "x*255"}
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ValueError(f"image array dtype {x.dtype} is not numeric; pass uint8 or float pixel values")
    values = x.astype(np.float32)
    if not np.isfinite(values).all():
        raise ValueError("image array contains NaN or infinity; clean it before loading")
    lo, hi = float(values.min()), float(values.max())
    record: dict[str, Any] = {"dtype": str(x.dtype), "min": lo, "max": hi}
    if lo < 0:
        record["rule"] = "(x-min)*255/(max-min)"  # e.g. data already normalised to mean 0
        values = (values - lo) * (255.0 / max(hi - lo, 1e-12))
    elif hi <= 1:
        record["rule"] = "x*255"
        values = values * 255.0
    elif np.issubdtype(x.dtype, np.integer) and hi <= 255:
        record["rule"] = "as is"  # integer pixels already in 0..255: rescaling by max would only brighten them
    else:
        record["rule"] = "x*255/max"
        values = values * (255.0 / hi)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8), record


def samples_from_arrays(x: Any, y: Any) -> tuple[Samples, dict[str, Any]]:
    """Wraps arrays X (N,H,W) or (N,H,W,C), C in 1,3,4, and labels y (ints or strings) as ``Samples``.

    Returns:
        The samples and a record of how pixel values were scaled to uint8.
    """
    if y is None:
        raise ValueError("array data needs labels: call load_data(X, y) with one label per image")
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 4 and x.shape[-1] not in (1, 3, 4) and x.shape[1] in (1, 3, 4):
        raise ValueError(
            f"images have shape {x.shape}, which looks channels-first; pass X.transpose(0, 2, 3, 1) (N,H,W,C)"
        )
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3, 4)):
        raise ValueError(f"images must be (N,H,W) or (N,H,W,C) with C in 1,3,4; got shape {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"labels must be one per image: got {y.shape} labels for {len(x)} images")
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    pixels, record = _to_uint8(x)
    classes = sort_class_names(y.tolist())
    index = {name: i for i, name in enumerate(classes)}
    labels = np.array([index[str(v)] for v in y.tolist()], dtype=np.int64)
    return Samples(classes, labels, arrays=pixels), record
