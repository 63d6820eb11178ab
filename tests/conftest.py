"""Shared fixtures: tiny timm models, tiny images, and an isolated feature cache per test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY = "test_efficientnet"  # timm's 0.1 M-parameter EfficientNet, random init: the structure without the cost


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOULDERS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("SHOULDERS_NO_REEXEC", "1")  # never re-exec the test process from the CLI


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    """A weights file for the tiny model, with its 1000-class head (what a pretrained file looks like)."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model(TINY).state_dict().items()}, str(path))
    return path


def colour_images(n_per_class: int, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Three separable classes (red, green, blue-ish noise): any working pipeline learns them."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label in range(3):
        base = np.zeros(3)
        base[label] = 200
        imgs = rng.normal(base, 40, size=(n_per_class, size, size, 3)).clip(0, 255).astype(np.uint8)
        xs.append(imgs)
        ys += [label] * n_per_class
    return np.concatenate(xs), np.asarray(ys), ["red", "green", "blue"]


@pytest.fixture
def colour_arrays() -> tuple[np.ndarray, np.ndarray, list[str]]:
    return colour_images(12)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """DATA/<class>/*.png with 12 images of each of 3 classes, 16 px."""
    x, y, classes = colour_images(12)
    root = tmp_path / "data"
    for i, (img, label) in enumerate(zip(x, y)):
        folder = root / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:03d}.png")
    return root
