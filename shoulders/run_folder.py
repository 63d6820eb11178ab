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
  duplicates.json     duplicate image content across / within the splits, and what was dropped, when any
  advice.json         the advisor's recommendation, when it chose the plan
  matrix.png          the size-similarity matrix with the dataset placed, next to advice.json
  checkpoint.pt       last epoch, for --resume (fine-tuning strategies)
  evaluation.json     after `shoulders evaluate`, with confusion_matrix.png, top_losses.png, curves.png and
                      report.html
```
Loading rebuilds the model from these files alone, offline: no weights download, no unpickling.

This module owns the file names (every other module imports them from here), the one atomic-write helper and
the one ``history.csv`` reader and writer.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import errno
import platform
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from torch import nn

MODEL_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CLASSES_NAME = "classes.json"
HISTORY_NAME = "history.csv"
METRICS_NAME = "metrics.json"
SPLIT_NAME = "split.json"
BAD_IMAGES_NAME = "bad_images.json"
DUPLICATES_NAME = "duplicates.json"
ADVICE_NAME = "advice.json"
MATRIX_NAME = "matrix.png"
CHECKPOINT_NAME = "checkpoint.pt"
EVALUATION_NAME = "evaluation.json"
CONFUSION_NAME = "confusion_matrix.png"
TOP_LOSSES_NAME = "top_losses.png"
CURVES_NAME = "curves.png"
REPORT_NAME = "report.html"

HISTORY_COLUMNS = ["epoch", "phase", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"]
# The run folder's format, stamped in config.json as "format": raised when a run folder gains a setting or file that
# an older shoulders cannot read, so that the older one says "upgrade" instead of failing on an unknown key.
# Run folders without it (written before it existed) are format 1.
FORMAT = 1


# -- writing files ---------------------------------------------------------------------------------------------
def atomic_write(path: str | Path, write: Callable[[Path], Any], *, fsync: bool = False) -> Path:
    """Calls ``write(tmp)`` on a temporary file next to ``path``, then renames it onto ``path``, so a crash (or a
    ``kill -9``) mid-write leaves the previous file intact, never half a file.

    Args:
        path: the file to (re)write.
        write: writes the content to the path it is given.
        fsync: flush the temporary file to disk before the rename (checkpoints that must survive a power cut).
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        tmp.replace(path)
    except Exception as e:  # a full disk, no permission (torch and safetensors wrap OSError in their own types)
        _remove_quietly(tmp)
        raise RunFolderWriteError(path, e) from None
    except BaseException:  # an interrupt mid-write leaves no temporary file behind either
        _remove_quietly(tmp)
        raise
    return path


class RunFolderWriteError(RuntimeError):
    """A run-folder file could not be written; ``path`` keeps its previous content (if it had any)."""

    def __init__(self, path: Path, error: Exception) -> None:
        self.path, self.error = path, error
        reason = getattr(error, "strerror", None) or str(error).strip().splitlines()[0] if str(error).strip() \
            else type(error).__name__
        kept = "its previous content is unchanged" if path.exists() else "nothing was written"
        try:
            free = shutil.disk_usage(path.parent).free
            space = f", {free / 2**20:.1f} MiB free on its disk" if free < 256 * 2**20 else ""
        except OSError:
            space = ""
        advice = _WRITE_ADVICE.get(getattr(error, "errno", None) or _errno_in(str(error)),
                                   "check the folder and run again, or write to another folder")
        super().__init__(f"could not write {path}: {reason} ({type(error).__name__}{space}); {kept}: {advice}")


_WRITE_ADVICE = {errno.ENOSPC: "free disk space and run again, or write to another folder",
                 errno.EDQUOT: "free space within your disk quota and run again, or write to another folder",
                 errno.EACCES: "fix the folder's permissions and run again, or write to another folder",
                 errno.EPERM: "fix the folder's permissions and run again, or write to another folder",
                 errno.EROFS: "the disk is read-only: write to another folder",
                 errno.ENOENT: "its folder no longer exists: run again, or write to another folder"}


def _errno_in(text: str) -> int | None:
    """The errno inside a message of a library that wraps OSError in its own type ("os error 28")."""
    match = re.search(r"os error (\d+)|Errno (\d+)", text)
    if match:
        return int(match.group(1) or match.group(2))
    return errno.ENOSPC if "No space left" in text or "unexpected pos" in text else None


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # a read-only folder cannot lose its temporary file either; it was never created then
        pass


def save_json(obj: Any, path: str | Path) -> Path:
    """Writes JSON atomically (see :func:`atomic_write`)."""
    text = json.dumps(obj, indent=2, default=_json_default) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def load_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing; is {path.parent} a shoulders run folder?") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); the run folder is damaged: retrain or restore it") from None


def _json_default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


# -- history.csv ---------------------------------------------------------------------------------------------
def write_history(run_dir: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Writes ``rows`` atomically; extra keys (e.g. the solver's ``C``) become extra columns after the fixed ones."""
    extra = [k for row in rows for k in row if k not in HISTORY_COLUMNS]
    columns = HISTORY_COLUMNS + list(dict.fromkeys(extra))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k, "")) for k in columns})
    return atomic_write(Path(run_dir) / HISTORY_NAME, lambda tmp: tmp.write_text(buffer.getvalue(), encoding="utf-8"))


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The rows of ``history.csv`` (``path`` is the run folder or the file): numbers as int or float, an empty
    numeric cell as NaN (a run without validation still has its train curves), ``phase`` as text; no file, no
    rows."""
    path = Path(path)
    if path.is_dir():
        path = path / HISTORY_NAME
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: v if k == "phase" else _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def _parse(value: str | None) -> Any:
    if value in (None, ""):
        return math.nan
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value and "e" not in value else number


# -- the run folder ----------------------------------------------------------------------------------------------
def library_versions() -> dict[str, str]:
    import numpy
    import sklearn
    import timm
    import torch
    import torchvision

    from . import __version__

    return {"shoulders": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "timm": timm.__version__, "numpy": numpy.__version__,
            "scikit-learn": sklearn.__version__}


def save_model(run_dir: str | Path, model: nn.Module) -> Path:
    """Writes the weights as safetensors (contiguous CPU copies; channels_last tensors are strided)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return atomic_write(Path(run_dir) / MODEL_NAME, lambda tmp: save_file(tensors, str(tmp)))


def load_model_weights(run_dir: str | Path, model: nn.Module) -> None:
    """Loads ``model.safetensors`` into ``model`` strictly; a damaged or mismatched file is a clear error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

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
              advice: dict[str, Any] | None, duplicates: dict[str, Any] | None = None) -> Path:
    """Writes every file of the run folder except ``history.csv`` (the trainer writes it as it goes);
    ``duplicates.json`` when duplicate content was found."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_model(run_dir, model)
    save_json({"format": FORMAT, **config}, run_dir / CONFIG_NAME)
    save_json(classes, run_dir / CLASSES_NAME)
    save_json(metrics, run_dir / METRICS_NAME)
    save_json(split, run_dir / SPLIT_NAME)
    if bad_images:
        save_json(bad_images, run_dir / BAD_IMAGES_NAME)
    if advice is not None:
        save_json(advice, run_dir / ADVICE_NAME)
    if duplicates and (duplicates.get("exact") or duplicates.get("near")):
        save_json(duplicates, run_dir / DUPLICATES_NAME)
    return run_dir


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """The JSON files of a run folder: ``config``, ``classes``, ``metrics`` and, when present, ``advice``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist; train one with `shoulders train DATA --out {run_dir}`")
    out = {"config": load_json(run_dir / CONFIG_NAME), "classes": load_json(run_dir / CLASSES_NAME)}
    check_format(out["config"], run_dir)
    for key, name in (("metrics", METRICS_NAME), ("advice", ADVICE_NAME), ("split", SPLIT_NAME)):
        out[key] = load_json(run_dir / name) if (run_dir / name).exists() else None
    return out


class RunFolderFormatError(ValueError):
    """A run folder written by a newer shoulders, in a format this one cannot read."""


def check_format(config: Any, run_dir: str | Path) -> None:
    """Raises :class:`RunFolderFormatError` when ``config`` (config.json's content) comes from a newer format."""
    found = config.get("format", 1) if isinstance(config, dict) else 1
    if not isinstance(found, int) or found > FORMAT:
        from . import __version__

        written = (config.get("versions") or {}).get("shoulders", "a newer version")
        raise RunFolderFormatError(
            f"{run_dir} was written by shoulders {written} in run-folder format {found!r}; this shoulders "
            f"({__version__}) reads format {FORMAT} and older: upgrade shoulders (pip install -U shoulders) to "
            f"use it, or retrain it with this version")


def is_run_folder(path: str | Path) -> bool:
    return (Path(path) / CONFIG_NAME).is_file() and (Path(path) / MODEL_NAME).is_file()
