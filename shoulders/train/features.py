"""Pooled features of a frozen backbone: computed once per image, cached in memory and on disk.

The disk cache is keyed by everything that determines the numbers — backbone name, weights hash, preprocessing,
precision, augmentation view — and by the content of every image (not its path), so a second run on the same
data skips the backbone entirely, and a changed file is never served stale features. Every entry also stores that
description with its shape and dtype and is checked against it when read: a damaged, foreign or mismatching entry
is recomputed and overwritten, never used. The cache is capped in size (``SHOULDERS_CACHE_MAX_SIZE``, default 4G),
least recently used entries going first; ``shoulders cache info`` / ``shoulders cache clear`` inspect and empty it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..run_folder import atomic_write
from .device import Precision
from .loop import predict_logits

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$SHOULDERS_CACHE_DIR``, else ``$XDG_CACHE_HOME/shoulders``, else ``~/.cache/shoulders``."""
    if os.environ.get("SHOULDERS_CACHE_DIR"):
        return Path(os.environ["SHOULDERS_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "shoulders"


def feature_cache_dir() -> Path:
    """Where the frozen strategy's feature matrices are kept: ``default_cache_dir() / "features"``."""
    return default_cache_dir() / "features"


CACHE_SIZE_ENV = "SHOULDERS_CACHE_MAX_SIZE"
DEFAULT_MAX_SIZE = "4G"  # ≈ 13 feature matrices of 60 000 images × 1 280 float32 (Fashion-MNIST with lite0)
_FORMAT = 1  # entry layout version: an entry written by another layout is recomputed, not guessed at
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``"4G"``, ``"500M"``, ``"2.5GB"``, ``"1048576"`` → bytes (binary units)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(I?B)?\s*", text.upper())
    if not match:
        raise ValueError(f"cache size {text!r} is not a size; write e.g. 4G, 500M or a number of bytes")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def cache_max_bytes() -> int:
    """The feature cache's size cap: ``$SHOULDERS_CACHE_MAX_SIZE``, else :data:`DEFAULT_MAX_SIZE`."""
    raw = os.environ.get(CACHE_SIZE_ENV, DEFAULT_MAX_SIZE)
    try:
        return parse_size(raw)
    except ValueError as e:
        raise ValueError(f"{CACHE_SIZE_ENV}: {e}") from None


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


@dataclass
class FeatureCache:
    """An on-disk store of feature matrices, one ``.npz`` per (model, preprocessing, images, view) key.

    Each entry carries its own description (identity, number of images, a digest of their content, shape and
    dtype). An entry that does not match what was asked for, or fails to load, is counted in ``rejected``,
    deleted, and recomputed by the caller; it is never used. The directory is kept under ``max_bytes`` by
    deleting the least recently used entries (a hit refreshes an entry's time).
    """

    directory: Path
    max_bytes: int | None = None  # None = cache_max_bytes() (the environment variable or the default)
    hits: int = 0
    misses: int = 0
    rejected: int = 0
    evicted: int = 0
    _expected: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def key(self, identity: dict[str, Any], fingerprints: list[str]) -> str:
        content = hashlib.sha256("\n".join(fingerprints).encode()).hexdigest()
        key = hashlib.sha256((_canonical(identity) + content).encode()).hexdigest()[:32]
        self._expected[key] = {"format": _FORMAT, "identity": _canonical(identity), "images": len(fingerprints),
                               "content": content}
        return key

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.npz"

    def get(self, key: str, dim: int | None = None) -> np.ndarray | None:
        """The entry's features if it exists and matches its key (and ``dim`` features per image, when given)."""
        path = self._path(key)
        if not path.exists():
            self.misses += 1
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                feats, meta = data["features"], json.loads(str(data["meta"]))
            problem = self._mismatch(key, feats, meta, dim)
        except Exception as e:  # noqa: BLE001 - zipfile, numpy and json raise many types for a damaged file
            problem = f"it cannot be read ({type(e).__name__})"
        if problem:
            self._reject(path, problem)
            return None
        self.hits += 1
        os.utime(path)  # least-recently-used eviction goes by this time
        return feats

    def _mismatch(self, key: str, feats: np.ndarray, meta: dict[str, Any], dim: int | None) -> str | None:
        expected = self._expected.get(key, {})
        for name in ("format", "identity", "images", "content"):
            if name in expected and meta.get(name) != expected[name]:
                return f"its {name} does not match the request"
        if feats.dtype != np.float32 or str(feats.dtype) != meta.get("dtype"):
            return f"its dtype is {feats.dtype}, not float32"
        if feats.ndim != 2 or list(feats.shape) != meta.get("shape") or feats.shape[0] != meta.get("images"):
            return f"its shape {tuple(feats.shape)} does not match the {meta.get('images')} images it describes"
        if dim is not None and feats.shape[1] != dim:
            return f"it has {feats.shape[1]} features per image, the backbone gives {dim}"
        if not np.isfinite(feats).all():
            return "it holds NaN or infinite values"
        return None

    def _reject(self, path: Path, problem: str) -> None:
        self.rejected += 1
        self.misses += 1
        logger.warning("feature cache entry %s is not used: %s; recomputing it", path.name, problem)
        path.unlink(missing_ok=True)

    def put(self, key: str, features: np.ndarray) -> None:
        """Stores ``features`` (float32, one row per image) with their description, then enforces the size cap."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        meta = {**self._expected.get(key, {"format": _FORMAT, "images": len(features)}),
                "shape": list(features.shape), "dtype": str(features.dtype)}
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            atomic_write(self._path(key), lambda tmp: _save_npz(tmp, features=features,
                                                                meta=np.array(_canonical(meta))))
        except OSError as e:  # a full disk costs the cache, never the run
            logger.warning("feature cache: could not store %s (%s); the run goes on without caching it",
                           self._path(key), e.strerror or e)
            return
        self.evicted += evict(self.directory, self.max_bytes if self.max_bytes is not None else cache_max_bytes())


def _entries(directory: Path) -> list[tuple[float, int, Path]]:
    """(last use, bytes, path) of every entry and leftover temporary file, least recently used first."""
    if not directory.is_dir():
        return []
    found = []
    for path in [*directory.glob("*.npz"), *directory.glob("*.npz.tmp")]:
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed meanwhile by another process
            continue
        found.append((stat.st_mtime, stat.st_size, path))
    return sorted(found)


def evict(directory: Path, max_bytes: int) -> int:
    """Deletes least-recently-used entries until the directory holds at most ``max_bytes``; returns how many."""
    entries = _entries(directory)
    total, removed = sum(size for _, size, _ in entries), 0
    for _, size, path in entries:
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total, removed = total - size, removed + 1
    return removed


def cache_info(directory: Path | None = None) -> dict[str, Any]:
    """Where the feature cache is, how many entries and bytes it holds, and its cap."""
    directory = directory or feature_cache_dir()
    entries = _entries(directory)
    return {"directory": str(directory), "entries": len(entries), "bytes": sum(s for _, s, _ in entries),
            "max_bytes": cache_max_bytes(), "max_size_setting": os.environ.get(CACHE_SIZE_ENV, DEFAULT_MAX_SIZE),
            "env": CACHE_SIZE_ENV}


def clear_cache(directory: Path | None = None) -> tuple[int, int]:
    """Deletes every entry; returns (entries, bytes) removed."""
    entries = _entries(directory or feature_cache_dir())
    for _, _, path in entries:
        path.unlink(missing_ok=True)
    return len(entries), sum(s for _, s, _ in entries)


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a path's name
        np.savez(f, **arrays)


def extract_features(backbone: nn.Module, loader: Any, device: torch.device, *, precision: Precision,
                     channels_last: bool, progress: bool, desc: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """One forward pass of the frozen ``backbone`` over ``loader``: (features float32 (N, D), labels)."""
    return predict_logits(backbone, loader, device, precision=precision, channels_last=channels_last,
                          progress=progress, desc=desc)
