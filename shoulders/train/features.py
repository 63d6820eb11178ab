"""Pooled features of a frozen backbone: computed once per image, cached in memory and on disk.

The disk cache is keyed by everything that determines the numbers — backbone name, weights hash, preprocessing,
precision, augmentation view — and by the content of every image (not its path), so a second run on the same
data skips the backbone entirely, and a changed file is never served stale features.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..run_folder import atomic_write
from .device import Precision
from .loop import predict_logits


def default_cache_dir() -> Path:
    """``$SHOULDERS_CACHE_DIR``, else ``$XDG_CACHE_HOME/shoulders``, else ``~/.cache/shoulders``."""
    if os.environ.get("SHOULDERS_CACHE_DIR"):
        return Path(os.environ["SHOULDERS_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "shoulders"


@dataclass
class FeatureCache:
    """An on-disk store of feature matrices, one ``.npz`` per (model, preprocessing, images, view) key."""

    directory: Path
    hits: int = 0
    misses: int = 0

    def key(self, identity: dict[str, Any], fingerprints: list[str]) -> str:
        h = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode())
        for fp in fingerprints:
            h.update(fp.encode())
        return h.hexdigest()[:32]

    def get(self, key: str) -> np.ndarray | None:
        path = self.directory / f"{key}.npz"
        if not path.exists():
            self.misses += 1
            return None
        try:
            with np.load(path) as data:
                feats = data["features"]
        except (OSError, ValueError, KeyError):  # a damaged entry is recomputed, never trusted
            self.misses += 1
            return None
        self.hits += 1
        return feats

    def put(self, key: str, features: np.ndarray) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write(self.directory / f"{key}.npz", lambda tmp: _save_npz(tmp, features))


def _save_npz(path: Path, features: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a path's name
        np.savez(f, features=features)


def extract_features(backbone: nn.Module, loader: Any, device: torch.device, *, precision: Precision,
                     channels_last: bool, progress: bool, desc: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """One forward pass of the frozen ``backbone`` over ``loader``: (features float32 (N, D), labels)."""
    return predict_logits(backbone, loader, device, precision=precision, channels_last=channels_last,
                          progress=progress, desc=desc)
