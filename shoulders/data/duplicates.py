"""Leakage: the same image content in train and in validation / test, or repeated within train.

Exact duplicates are found by the content fingerprint the feature cache already keys on
(:meth:`Samples.fingerprint`: the file's bytes, or an array's shape and pixels). Near-duplicates (the same picture
re-encoded, resized or slightly edited) are found, when asked, by a perceptual hash from the optional
``imagehash`` package (``pip install "shoulders[dedup]"``): a validation or test image whose 64-bit pHash lies
within :data:`NEAR_DISTANCE` bits of a training image's is reported (never dropped: a perceptual hash also matches
distinct images that merely look alike).

What happens to an exact copy in validation / test is ``on_duplicate``: ``drop`` (the default) removes it from
that split, so its score is not inflated by images the model has seen; ``keep`` leaves it (reported only);
``error`` stops with the list.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shoulders.data.samples import Samples

logger = logging.getLogger(__name__)

ON_DUPLICATE = ("drop", "keep", "error")
NEAR_DISTANCE = 4  # pHash bits that may differ for two images to count as near-duplicates (of 64)
_EVALUATED = ("val", "test")  # splits whose copies of training images inflate a score
_SHOW = 3


@dataclass
class DuplicateReport:
    """Duplicate content found across and within the splits, and what was done about it.

    Attributes:
        policy: ``drop`` | ``keep`` | ``error`` (see the module docstring).
        groups: exact duplicates: each a list of ``{"split", "image"}`` holding the same content (2 or more).
        near: near-duplicate pairs ``{"distance", "a": {split, image}, "b": {split, image}}`` (when asked).
        counts: ``train_within`` (train images repeating an earlier train image), ``val_in_train``,
            ``test_in_train``, ``test_in_val``, ``near`` (pairs), ``dropped_val``, ``dropped_test``.
    """

    policy: str = "drop"
    groups: list[list[dict[str, str]]] = field(default_factory=list)
    near: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    near_checked: bool = False

    @property
    def found(self) -> bool:
        return bool(self.groups or self.near)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for the run folder's ``duplicates.json``."""
        return {"policy": self.policy, "counts": dict(self.counts), "near_checked": self.near_checked,
                "near_distance": NEAR_DISTANCE if self.near_checked else None, "exact": self.groups,
                "near": self.near}

    def summary(self) -> str:
        """One line for the training summary and the advice ("" when nothing was found)."""
        return summary_text(self.to_dict())


def summary_text(report: dict[str, Any]) -> str:
    """The one-line summary of a report's ``to_dict()`` (as saved in ``duplicates.json``); "" for none found."""
    if not (report["exact"] or report["near"]):
        return ""
    c = report["counts"]
    parts = [f"{c[k]} {label}" for k, label in (("val_in_train", "validation image(s) also in train"),
                                              ("test_in_train", "test image(s) also in train"),
                                              ("test_in_val", "test image(s) also in validation"),
                                              ("train_within", "repeated training image(s)"),
                                              ("near", "near-duplicate pair(s) across splits")) if c.get(k)]
    dropped = [f"{c[k]} from {s}" for k, s in (("dropped_val", "validation"), ("dropped_test", "test")) if c.get(k)]
    text = "duplicate content: " + ", ".join(parts)
    if dropped:
        text += f"; dropped {' and '.join(dropped)} so their scores are not inflated"
    elif report["policy"] == "keep" and (c.get("val_in_train") or c.get("test_in_train") or c.get("test_in_val")):
        text += "; kept (on_duplicate='keep'): validation/test scores include images seen in training"
    return text


def _fingerprints(samples: Samples) -> list[str]:
    if len(samples) == 0:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(samples))) as pool:  # file reads and sha1 release the GIL
        return list(pool.map(samples.fingerprint, range(len(samples)), chunksize=256))


def _exact_groups(parts: dict[str, Samples]) -> tuple[list[list[tuple[str, int]]], dict[str, list[str]]]:
    """Groups of (split, index) sharing one fingerprint, and every split's fingerprints."""
    prints = {name: _fingerprints(s) for name, s in parts.items()}
    by_print: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for name, fps in prints.items():
        for i, fp in enumerate(fps):
            by_print[fp].append((name, i))
    return [members for members in by_print.values() if len(members) > 1], prints


def _counts(groups: list[list[tuple[str, int]]]) -> tuple[dict[str, int], dict[str, set[int]]]:
    """Counts per kind, and the val / test indices that copy an image of an earlier split (train < val < test)."""
    counts = {"train_within": 0, "val_in_train": 0, "test_in_train": 0, "test_in_val": 0}
    leaked: dict[str, set[int]] = {"val": set(), "test": set()}
    for members in groups:
        splits = [s for s, _ in members]
        counts["train_within"] += max(0, splits.count("train") - 1)
        for split, index in members:
            if split == "val" and "train" in splits:
                counts["val_in_train"] += 1
                leaked["val"].add(index)
            elif split == "test" and "train" in splits:
                counts["test_in_train"] += 1
                leaked["test"].add(index)
            elif split == "test" and "val" in splits:
                counts["test_in_val"] += 1
                leaked["test"].add(index)
    return counts, leaked


def _phashes(samples: Samples) -> np.ndarray:
    import imagehash  # optional; checked by the caller

    def one(i: int) -> int:
        bits = imagehash.phash(samples.load(i)).hash.flatten()
        return int(np.packbits(bits).view(">u8")[0])

    with ThreadPoolExecutor(max_workers=4) as pool:
        return np.fromiter(pool.map(one, range(len(samples))), dtype=np.uint64, count=len(samples))


def _near_pairs(parts: dict[str, Samples], exact: set[tuple[str, int]]) -> list[dict[str, Any]]:
    """Validation / test images within NEAR_DISTANCE pHash bits of a training image (exact copies left out)."""
    train = _phashes(parts["train"])
    pairs = []
    for name in _EVALUATED:
        if name not in parts or len(parts[name]) == 0:
            continue
        hashes = _phashes(parts[name])
        for start in range(0, len(hashes), 1024):  # blocks keep the distance matrix small
            block = hashes[start:start + 1024]
            distance = np.bitwise_count(block[:, None] ^ train[None, :])
            for i, j in zip(*np.nonzero(distance <= NEAR_DISTANCE)):
                if (name, start + int(i)) not in exact:
                    pairs.append({"distance": int(distance[i, j]),
                                  "a": {"split": "train", "image": parts["train"].describe(int(j))},
                                  "b": {"split": name, "image": parts[name].describe(start + int(i))}})
    return pairs


def near_duplicates_available() -> bool:
    """Whether the optional ``imagehash`` package (perceptual hashes) is installed."""
    try:
        import imagehash  # noqa: F401
    except ImportError:
        return False
    return True


def find_duplicates(parts: dict[str, Samples], *, policy: str = "drop", near: bool = False
                    ) -> tuple[DuplicateReport, dict[str, np.ndarray]]:
    """Finds duplicate content in ``parts`` (split name → samples; "train" required) and applies ``policy``.

    Args:
        parts: the splits as they will be used: ``train``, ``val`` and, when present, ``test``.
        policy: ``drop`` | ``keep`` | ``error``.
        near: also look for near-duplicates by perceptual hash (needs ``imagehash``).

    Returns:
        The report and, per split, the indices to keep (all of them unless ``policy`` is ``drop``).

    Raises:
        ValueError: an unknown ``policy``; duplicates across splits under ``error``; ``near`` without imagehash.
    """
    if policy not in ON_DUPLICATE:
        raise ValueError(f"on_duplicate must be one of {', '.join(ON_DUPLICATE)}, got {policy!r}")
    if near and not near_duplicates_available():
        raise ValueError("near-duplicate detection needs the imagehash package: pip install \"shoulders[dedup]\"")
    groups, _ = _exact_groups(parts)
    counts, leaked = _counts(groups)
    exact_members = {m for g in groups for m in g}
    near_pairs = _near_pairs(parts, exact_members) if near else []
    report = DuplicateReport(policy, [[{"split": s, "image": parts[s].describe(i)} for s, i in g] for g in groups],
                             near_pairs, {**counts, "near": len(near_pairs), "dropped_val": 0, "dropped_test": 0},
                             near_checked=near)
    across = leaked["val"] or leaked["test"]
    if policy == "error" and across:
        shown = [m["image"] for g in report.groups for m in g if m["split"] != "train"][:_SHOW]
        raise ValueError(f"{len(leaked['val']) + len(leaked['test'])} validation/test image(s) have the same "
                         f"content as an image of an earlier split ({', '.join(shown)}, ...); remove the copies, "
                         "or choose on_duplicate='drop' (leave them out of validation/test) or 'keep'")
    keep = {name: np.arange(len(s)) for name, s in parts.items()}
    if policy == "drop":
        for name in _EVALUATED:
            if leaked.get(name) and name in parts:
                keep[name] = np.array([i for i in range(len(parts[name])) if i not in leaked[name]], dtype=np.int64)
                report.counts[f"dropped_{name}"] = len(leaked[name])
    if report.found:
        logger.warning("%s", report.summary())
    return report, keep
