"""``load_data``: any source (image folder, CSV, arrays, ``Samples``) → checked, split ``DataSplits``."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from shoulders.config import DEFAULT_VAL_MAX
from shoulders.data._readers import Listing, list_csv, list_folder, samples_from_arrays
from shoulders.data.duplicates import ON_DUPLICATE, DuplicateReport, find_duplicates
from shoulders.data.images import BadImage, BadImageError, scan_images
from shoulders.data.samples import DataSplits, Samples, sort_class_names

logger = logging.getLogger(__name__)

ON_BAD_IMAGE = ("skip", "error")
_SHOW = 5  # how many offending files a message lists before "..."


def _first_few(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (f", ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else "")


def _handle_bad(bad: list[BadImage], missing: list[BadImage], on_bad_image: str, where: str) -> None:
    """Raises in "error" mode; in "skip" mode says, once, how many files were left out."""
    if on_bad_image == "error":
        if missing:
            raise ValueError(
                f"{len(missing)} file(s) listed in {where} do not exist: {_first_few([b.path for b in missing])}; "
                "fix the paths, or use on_bad_image='skip'"
            )
        if bad:
            raise BadImageError(bad[0].path, bad[0].reason)
    if missing:
        logger.warning("skipped %d missing file(s) listed in %s: %s", len(missing), where,
                       _first_few([b.path for b in missing]))
    if bad:
        logger.warning("skipped %d unreadable image(s) in %s: %s", len(bad), where, _first_few([b.path for b in bad]))


def _nothing_readable(listing: Listing, pool_name: str, bad: list[BadImage]) -> str:
    """Why a source gave no usable training image, in the source's own terms (CSV rows or folders)."""
    listed = listing.parts.get(pool_name, [])
    if listing.method in ("csv", "pool") and listing.where.lower().endswith(".csv") and not listed:
        if listing.missing:
            folder = Path(listing.where).resolve().parent
            return (f"none of the {len(listing.missing)} file(s) listed in {listing.where} exist "
                    f"({_first_few([b.path for b in listing.missing])}); relative paths are read from the CSV's "
                    f"folder {folder}: fix the path column or move the CSV next to the images")
        return f"{listing.where} lists no {'training ' if pool_name == 'train' else ''}images; add rows path,label"
    if listed and len(bad) >= len(listed):
        return (f"none of the {len(listed)} images in {listing.where} could be read "
                f"({_first_few([b.path + ': ' + b.reason for b in bad])}); fix or replace those files")
    return f"no readable images found in {listing.where}; expected images laid out by class"


def _samples_from_listing(listing: Listing, on_bad_image: str) -> tuple[dict[str, Samples], list[BadImage]]:
    """Checks every listed file, drops bad ones (or raises) and builds one ``Samples`` per split."""
    all_paths = [path for pairs in listing.parts.values() for path, _ in pairs]
    bad = scan_images(all_paths)
    _handle_bad(bad, listing.missing, on_bad_image, listing.where)
    bad_paths = {b.path for b in bad}
    good = {name: [(p, c) for p, c in pairs if p not in bad_paths] for name, pairs in listing.parts.items()}
    pool_name = "train" if "train" in good else "all"
    if not good[pool_name]:
        raise ValueError(_nothing_readable(listing, pool_name, bad))
    named = {c for _, c in listing.parts[pool_name]}
    classes = sort_class_names(c for _, c in good[pool_name])
    lost = sorted(named - set(classes))
    if lost:
        raise ValueError(
            f"class(es) {', '.join(lost)} in {listing.where} have no readable images (all were bad); "
            "fix those files or remove the class"
        )
    index = {name: i for i, name in enumerate(classes)}
    parts: dict[str, Samples] = {}
    for name, pairs in good.items():
        unknown = sorted({c for _, c in pairs if c not in index})
        if unknown:
            raise ValueError(
                f"{name} split of {listing.where} has class(es) {', '.join(unknown)} that train does not have; "
                "add training images for them or remove them"
            )
        labels = [index[c] for _, c in pairs]
        parts[name] = Samples(classes, labels, paths=[p for p, _ in pairs])
    return parts, listing.missing + bad


def _read_source(source: Any, labels: Any) -> tuple[dict[str, Samples], str, str, dict[str, Any]]:
    """Returns (parts, where, method, extra record) without the checks that need ``on_bad_image``."""
    if isinstance(source, Samples):
        if labels is not None:
            raise ValueError("labels= is only for array data; Samples carry their own labels")
        return {"all": source}, "samples", "pool", {}
    if isinstance(source, (np.ndarray, list, tuple)) or hasattr(source, "__array__"):
        samples, scaling = samples_from_arrays(source, labels)
        return {"all": samples}, "arrays", "pool", {"array_scaling": scaling}
    raise TypeError(
        f"cannot load data from {type(source).__name__}; pass a folder, a .csv file, arrays X with labels y, "
        "or Samples"
    )


def _pool_checks(pool: Samples, where: str) -> None:
    """The two source-level errors every split would otherwise turn into something obscure."""
    if len(pool) == 0:
        raise ValueError(f"no images found in {where}")
    present = sorted(set(pool.labels.tolist()))
    if len(present) < 2:
        only = pool.classes[present[0]] if present else "none"
        raise ValueError(f"only one class ({only}) in {where}; a classifier needs images of at least 2 classes")


def stratified_split(labels: np.ndarray, classes: list[str], val_fraction: float, seed: int,
                     where: str, val_max: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified train/validation indices (each sorted, so splits keep the source's order).

    The validation set holds ``val_fraction`` of the images, at most ``val_max`` of them (``None``: no cap). Its
    size is raised to one image per class when that would give fewer, because stratification cannot put every
    class in a smaller set.
    """
    counts = np.bincount(labels, minlength=len(classes))
    too_few = [(classes[i], int(n)) for i, n in enumerate(counts) if 0 < n < 2]
    if too_few:
        name, n = too_few[0]
        raise ValueError(
            f"class {name!r} has only {n} image in {where}, so a stratified validation split is impossible "
            f"({len(too_few)} such class(es)); add at least 2 images per class, or give a validation set "
            "(val/ folder, or a CSV split column)"
        )
    n_classes = int((counts > 0).sum())
    n_val = math.ceil(val_fraction * len(labels))
    n_val = max(n_val if val_max is None else min(n_val, val_max), n_classes)
    if len(labels) - n_val < n_classes:
        raise ValueError(
            f"{where} has {len(labels)} images in {n_classes} classes: too few to hold out a validation set "
            f"with val_fraction={val_fraction}; add images or give a validation set"
        )
    from sklearn.model_selection import train_test_split  # scikit-learn only when a split is drawn

    train_idx, val_idx = train_test_split(
        np.arange(len(labels)), test_size=n_val, stratify=labels, random_state=seed
    )
    return np.sort(train_idx), np.sort(val_idx)


def cap_per_class(labels: np.ndarray, max_per_class: int, seed: int) -> np.ndarray:
    """Sorted indices keeping at most ``max_per_class`` of each label, chosen at random with ``seed``."""
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        if len(idx) > max_per_class:
            idx = rng.choice(idx, size=max_per_class, replace=False)
        keep.append(idx)
    return np.sort(np.concatenate(keep))


def _check_options(val_fraction: float, val_max: int | None, on_bad_image: str, max_per_class: int | None,
                   on_duplicate: str) -> None:
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if val_max is not None and (isinstance(val_max, bool) or not isinstance(val_max, int) or val_max < 1):
        raise ValueError(f"val_max must be a whole number of images, at least 1 (or None for no cap), got {val_max!r}")
    if on_bad_image not in ON_BAD_IMAGE:
        raise ValueError(f"on_bad_image must be one of {', '.join(ON_BAD_IMAGE)}, got {on_bad_image!r}")
    if max_per_class is not None and max_per_class < 1:
        raise ValueError(f"max_per_class must be at least 1 (or None for all images), got {max_per_class}")
    if on_duplicate not in ON_DUPLICATE:
        raise ValueError(f"on_duplicate must be one of {', '.join(ON_DUPLICATE)}, got {on_duplicate!r}")


def _open_source(source: Any, labels: Any, on_bad_image: str
                 ) -> tuple[dict[str, Samples], str, str, dict[str, Any], list[BadImage]]:
    """Reads any source into per-split ``Samples``; path sources are scanned for bad files here."""
    if isinstance(source, (str, os.PathLike)):
        if labels is not None:
            raise ValueError("labels= is only for array data; folders and CSV files carry their own labels")
        path = Path(source)
        if path.is_dir():
            listing = list_folder(path)
        elif path.is_file() and path.suffix.lower() == ".csv":
            listing = list_csv(path)
        elif path.exists():
            raise ValueError(f"{path} is neither a folder of class folders nor a .csv file")
        else:
            raise ValueError(f"data source {path} does not exist; pass an image folder or a .csv file")
        parts, bad = _samples_from_listing(listing, on_bad_image)
        return parts, listing.where, listing.method, {}, bad
    parts, where, method, extra = _read_source(source, labels)
    bad: list[BadImage] = []
    pool = parts["all"]
    if pool.paths is not None:  # Samples built from files: same checks as any other file source
        bad = scan_images(pool.paths)
        _handle_bad(bad, [], on_bad_image, where)
        bad_set = {b.path for b in bad}
        parts["all"] = pool.subset([i for i, p in enumerate(pool.paths) if p not in bad_set])
    return parts, where, method, extra, bad


def _val_record(pool: Samples, val_idx: np.ndarray) -> dict[str, Any]:
    if pool.paths is not None:
        return {"val_files": [pool.paths[i] for i in val_idx]}
    return {"val_indices": [int(i) for i in val_idx]}


def load_data(
    source: str | os.PathLike | np.ndarray | Samples,
    labels: Sequence[Any] | np.ndarray | None = None,
    *,
    val_fraction: float = 0.2,
    val_max: int | None = DEFAULT_VAL_MAX,
    seed: int = 0,
    on_bad_image: str = "skip",
    max_per_class: int | None = None,
    on_duplicate: str = "drop",
    near_duplicates: bool = False,
) -> DataSplits:
    """Loads a labelled image source and splits it into train / validation (/ test).

    Args:
        source: an image folder (``DATA/<class>/*`` or ``DATA/{train,val,test}/<class>/*``), a CSV file with
            columns ``path,label[,split]``, an array of images (with ``labels``), or ``Samples``.
        labels: one label (int or str) per image, for array sources only.
        val_fraction: share of the images held out for validation when the source has no validation split.
        val_max: at most this many images held out that way (``None``: no cap).
        seed: seeds the validation split and the ``max_per_class`` subset.
        on_bad_image: "skip" leaves unreadable files out (listed in ``bad_images``); "error" raises.
        max_per_class: keep at most this many training images per class (validation is not capped).
        on_duplicate: validation / test images whose content is also in train (or test images also in
            validation): "drop" them from validation / test, "keep" them (reported only), or "error".
        near_duplicates: also report near-duplicates across splits by perceptual hash (needs ``imagehash``).

    Returns:
        The splits, the class names, a JSON-able record of the split, the skipped files and the duplicates found.

    Raises:
        ValueError: no images, an empty class folder, a single class, a class too small to split, a CSV without
            the needed columns, missing CSV files in "error" mode, or duplicates across splits in "error" mode.
        BadImageError: an unreadable image in "error" mode.
    """
    _check_options(val_fraction, val_max, on_bad_image, max_per_class, on_duplicate)
    parts, where, method, record, bad = _open_source(source, labels, on_bad_image)
    pool = parts.get("train", parts.get("all"))
    _pool_checks(pool, where)  # type: ignore[arg-type]
    split: dict[str, Any] = {"method": method, "source": where, "seed": seed, **record}
    if "val" in parts:
        train, val = pool, parts["val"]
    else:
        train_idx, val_idx = stratified_split(pool.labels, pool.classes, val_fraction, seed, where, val_max)
        train, val = pool.subset(train_idx), pool.subset(val_idx)
        split.update({"method": "stratified", "val_fraction": val_fraction, "val_max": val_max,
                      **_val_record(pool, val_idx)})
        if method != "pool":
            split["given"] = method  # e.g. test came from folders, validation was made here
    if max_per_class is not None:
        train = train.subset(cap_per_class(train.labels, max_per_class, seed))
        split["max_per_class"] = max_per_class
    test = parts.get("test")
    split["has_test"] = test is not None
    val, test, duplicates = _deduplicate(train, val, test, on_duplicate, near_duplicates, where)
    return DataSplits(train=train, val=val, test=test, classes=list(pool.classes), split=split, bad_images=bad,
                      duplicates=duplicates)


def _deduplicate(train: Samples, val: Samples, test: Samples | None, on_duplicate: str, near: bool,
                 where: str) -> tuple[Samples, Samples | None, DuplicateReport]:
    """Applies the duplicates policy; a split left empty by it is an error that says what happened."""
    parts = {"train": train, "val": val, **({"test": test} if test is not None else {})}
    report, keep = find_duplicates(parts, policy=on_duplicate, near=near)
    if on_duplicate != "drop" or not (report.counts["dropped_val"] or report.counts["dropped_test"]):
        return val, test, report
    for name, label in (("val", "validation"), ("test", "test")):
        if name in parts and len(parts[name]) and not len(keep[name]):
            raise ValueError(f"every {label} image of {where} is also a training image (same content); give "
                             f"{label} images that are not in train, or keep them with on_duplicate='keep'")
    return val.subset(keep["val"]), (test.subset(keep["test"]) if test is not None else None), report


def load_labelled(
    source: str | os.PathLike | np.ndarray | Samples,
    classes: Sequence[str],
    labels: Sequence[Any] | np.ndarray | None = None,
    *,
    split: str = "auto",
    on_bad_image: str = "skip",
) -> tuple[Samples, str, list[BadImage]]:
    """Labelled images to evaluate a trained model on, labelled in the model's own class order.

    Args:
        source: as for :func:`load_data`.
        classes: the model's classes; every class in ``source`` must be one of them (a subset is fine).
        split: which part of a split source: ``auto`` (test, else val, else everything), or a split name.

    Returns:
        (samples, the split's name, skipped bad images).
    """
    if on_bad_image not in ON_BAD_IMAGE:
        raise ValueError(f"on_bad_image must be one of {', '.join(ON_BAD_IMAGE)}, got {on_bad_image!r}")
    parts, where, _, _, bad = _open_source(source, labels, on_bad_image)
    if split == "auto":
        split = next(name for name in ("test", "val", "all", "train") if name in parts)
    if split not in parts:
        raise ValueError(f"{where} has no {split} split; it has {', '.join(sorted(parts))}")
    samples = parts[split]
    if len(samples) == 0:
        raise ValueError(f"no images found in the {split} split of {where}")
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({samples.classes[j] for j in set(samples.labels.tolist())} - set(index))
    if unknown:
        raise ValueError(f"class(es) {', '.join(unknown)} in {where} are not classes of the model "
                         f"({', '.join(classes)}); evaluate on images of the classes it was trained on")
    remapped = np.array([index[samples.classes[j]] for j in samples.labels], dtype=np.int64)
    relabelled = Samples(list(classes), remapped, paths=samples.paths, arrays=samples.arrays)
    return relabelled, split, bad
