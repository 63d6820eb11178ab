"""Epoch checkpoints for ``--resume``: a named dict, written atomically, loaded without unpickling code."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..run_folder import atomic_write


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Writes ``state`` to ``path`` atomically and flushed to disk, so a kill -9 mid-write leaves the previous
    checkpoint intact."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp), fsync=True)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Loads a checkpoint with ``weights_only=True`` (tensors and plain values only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}: nothing to resume; train without resume=True") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for a damaged file
        raise ValueError(f"checkpoint {path} is damaged ({type(e).__name__}); delete it and train again") from None


def rng_state() -> dict[str, Any]:
    """The global random states, in types ``weights_only`` loading accepts."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                                                      *np_state[2:]],
            "python": list(random.getstate()[1]), "python_version": random.getstate()[0]}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np_state[1].numpy().astype(np.uint32), *np_state[2:]))
    random.setstate((state["python_version"], tuple(state["python"]), None))
