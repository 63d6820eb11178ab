"""The run folder: the contract between ``train`` and every command that reads a trained model.

```
RUN_DIR/
  model.safetensors   weights of backbone + head (no pickle)
  config.json         everything resolved: backbone, weights source and hash, preprocessing, strategy and its
                      phases, classes, hyper-parameters, seed, runtime, library versions
  classes.json        class names, index = output unit
  history.csv         one row per epoch
  metrics.json        val_accuracy (and test_accuracy when a test split exists), best epoch...
  split.json          how train/val were split (which files are validation)
  bad_images.json     unreadable files that were skipped, when any
  advice.json         the advisor's recommendation, when it chose the plan
  matrix.png          the size-similarity matrix with the dataset placed, next to advice.json
  checkpoint.pt       last epoch, for --resume (fine-tuning strategies)
```
Loading rebuilds the model from these files alone, offline: no weights download, no unpickling.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .config import load_json, save_json

MODEL_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CLASSES_NAME = "classes.json"
METRICS_NAME = "metrics.json"
SPLIT_NAME = "split.json"
BAD_IMAGES_NAME = "bad_images.json"
ADVICE_NAME = "advice.json"
MATRIX_NAME = "matrix.png"


def library_versions() -> dict[str, str]:
    import numpy
    import sklearn
    import timm
    import torchvision

    from . import __version__

    return {"shoulders": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "timm": timm.__version__, "numpy": numpy.__version__,
            "scikit-learn": sklearn.__version__}


def save_model(run_dir: str | Path, model: nn.Module) -> Path:
    """Writes the weights as safetensors (contiguous CPU copies; channels_last tensors are strided)."""
    path = Path(run_dir) / MODEL_NAME
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(path)
    return path


def load_model_weights(run_dir: str | Path, model: nn.Module) -> None:
    """Loads ``model.safetensors`` into ``model`` strictly; a damaged or mismatched file is a clear error."""
    path = Path(run_dir) / MODEL_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; is {Path(run_dir)} a finished shoulders run folder?")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path} is damaged or truncated ({e}); retrain, or restore the file from a backup") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise ValueError(f"{path} does not match the model described by config.json ({first}); "
                         f"the run folder's files are from different runs") from None


def write_run(run_dir: str | Path, *, model: nn.Module, config: dict[str, Any], classes: list[str],
              metrics: dict[str, Any], split: dict[str, Any], bad_images: list[dict[str, str]],
              advice: dict[str, Any] | None) -> Path:
    """Writes every file of the run folder except ``history.csv`` (the trainer writes it as it goes)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_model(run_dir, model)
    save_json(config, run_dir / CONFIG_NAME)
    save_json(classes, run_dir / CLASSES_NAME)
    save_json(metrics, run_dir / METRICS_NAME)
    save_json(split, run_dir / SPLIT_NAME)
    if bad_images:
        save_json(bad_images, run_dir / BAD_IMAGES_NAME)
    if advice is not None:
        save_json(advice, run_dir / ADVICE_NAME)
    return run_dir


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """The JSON files of a run folder: ``config``, ``classes``, ``metrics`` and, when present, ``advice``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist; train one with `shoulders train DATA --out {run_dir}`")
    out = {"config": load_json(run_dir / CONFIG_NAME), "classes": load_json(run_dir / CLASSES_NAME)}
    for key, name in (("metrics", METRICS_NAME), ("advice", ADVICE_NAME), ("split", SPLIT_NAME)):
        out[key] = load_json(run_dir / name) if (run_dir / name).exists() else None
    return out


def is_run_folder(path: str | Path) -> bool:
    return (Path(path) / CONFIG_NAME).is_file() and (Path(path) / MODEL_NAME).is_file()
