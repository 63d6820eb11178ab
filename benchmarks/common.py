"""What every benchmark shares: the machine record, data sets and splits, one shoulders run, tables and JSON.

Every benchmark trains and tests on the same splits (:func:`dataset`), so a row of one table can be compared with
a row of another; every JSON file records the command and the machine that produced it.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
BENCH_DIR = ROOT / ".bench"  # git-ignored: image folders, weights files and the peers' virtual environments
IMAGE_SIZE = 64  # the common input size of the accuracy and peer benchmarks (FINDINGS' baselines are at 64 px)
EPOCHS = 10  # the common fine-tuning budget: full and partial (and auto's fine-tuning) train this many epochs
BATCH_SIZE = 64
# glibc's malloc otherwise mmaps every large activation buffer: ~3x slower on the CPU (FINDINGS). It only works
# when set before the process starts, so ``python -m benchmarks`` re-executes itself with it.
GLIBC_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4000000000"


# -- the machine and the command -----------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, memory, library versions and the code's commit."""
    import timm
    import torch

    import shoulders

    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                   if line.startswith("MemTotal")), 0)
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "torch_threads": torch.get_num_threads(),
            "memory_gb": round(mem_kb / 2**20, 1), "python": platform.python_version(), "torch": torch.__version__,
            "timm": timm.__version__, "shoulders": shoulders.__version__, "commit": git_commit(),
            "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""), "date": time.strftime("%Y-%m-%d %H:%M")}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def git_commit() -> str:
    """The checked-out commit, with ``+dirty`` when the tree has local changes (read-only git calls)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command(profile: str, name: str) -> str:
    return f"flock /tmp/shoulders-heavy.lock .venv/bin/python -m benchmarks --profile {profile} {name}"


def write_result(name: str, profile: str, payload: dict[str, Any]) -> Path:
    """``benchmarks/results/<name>-<profile>.json`` with the command and the machine added."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}-{profile}.json"
    record = {"benchmark": name, "profile": profile, "command": command(profile, name), "machine": machine(),
              **payload}
    path.write_text(json.dumps(record, indent=1, default=_json_default) + "\n")
    return path


def read_result(name: str, profile: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}-{profile}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


# -- numbers and tables --------------------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, mean, sample standard deviation (0 for one value), min, max and count."""
    vals = [float(v) for v in values]
    return {"median": statistics.median(vals), "mean": statistics.fmean(vals),
            "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "min": min(vals), "max": max(vals),
            "n": len(vals)}


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def mean_std(values: Sequence[float]) -> str:
    """``84.1 ± 0.6`` (percent) or just ``84.1`` for one value."""
    if not values:
        return "—"
    s = summary(values)
    return f"{100 * s['mean']:.1f}" + (f" ± {100 * s['std']:.1f}" if s["n"] > 1 else "")


def group_rows(rows: Sequence[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """The rows that did not fail, grouped by the values of ``keys`` (insertion order kept)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        if "error" not in r:
            groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    return groups


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A Markdown table of ``rows``; ``columns`` are (key, header) pairs and values are shown as given."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(k, "")) for k, _ in columns) + " |")
    return "\n".join(lines)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (VmHWM): unlike ``ru_maxrss``, not inherited across fork + exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: Linux reports kilobytes


def chosen_label(strategy: str | None, trainable_blocks: float | None, augment: str | None) -> str:
    """What a shoulders run trained, as the tables show it: ``partial top-7 +light``, ``full``, ``frozen +light``."""
    depth = f" top-{trainable_blocks}" if strategy == "partial" else ""
    extra = f" +{augment}" if augment not in (None, "none") else ""
    return f"{strategy}{depth}{extra}"


# -- data ----------------------------------------------------------------------------------------------------
@dataclass
class Dataset:
    """A benchmark data set: train/val arrays (val held out from the training pool) and a separate test set."""

    name: str
    classes: list[str]
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    note: str

    def splits(self) -> Any:
        """The same data as shoulders ``DataSplits``."""
        from shoulders.data import DataSplits, Samples

        def samples(x: np.ndarray, y: np.ndarray) -> Samples:
            return Samples(self.classes, y, arrays=np.ascontiguousarray(x))

        return DataSplits(train=samples(self.train_x, self.train_y), val=samples(self.val_x, self.val_y),
                          test=samples(self.test_x, self.test_y), classes=list(self.classes),
                          split={"method": "benchmark", "dataset": self.name})

    def sizes(self) -> str:
        return f"{len(self.train_y)} / {len(self.val_y)} / {len(self.test_y)}"


def _hold_out(x: np.ndarray, y: np.ndarray, fraction: float, seed: int,
              most: int | None = None) -> tuple[np.ndarray, ...]:
    from shoulders.data.sources import stratified_split

    classes = [str(c) for c in range(int(y.max()) + 1)]
    keep, held = stratified_split(y, classes, fraction, seed, "benchmark data", most)
    return x[keep], y[keep], x[held], y[held]


def dataset(name: str, seed: int) -> Dataset:
    """``fashion-<N>`` (N images per class, or ``fashion-full``), ``digits`` or ``photos``, drawn with ``seed``.

    The training pool is split 80/20 into train and validation, the validation set capped as shoulders caps it
    (``DEFAULT_VAL_MAX``, 5 000 images: only Fashion-MNIST's 6 000/class is affected) — the same split for every
    method; the test set is Fashion-MNIST's official 10 000 images, a seeded 20 % of digits, or fresh crops of the
    photos.
    """
    from shoulders.config import DEFAULT_VAL_MAX
    from shoulders.data import load_digits_arrays, load_fashion_mnist, load_photos_arrays

    if name.startswith("fashion-"):
        per_class = None if name == "fashion-full" else int(name.split("-")[1])
        x, y, classes = load_fashion_mnist("train", per_class=per_class, seed=seed)
        test_x, test_y, _ = load_fashion_mnist("test")
        note = f"Fashion-MNIST, {per_class or 6000} train images per class (seeded draw), official 10k test"
    elif name == "digits":
        x_all, y_all, classes = load_digits_arrays()
        x, y, test_x, test_y = _hold_out(x_all, y_all, 0.2, seed)
        note = "scikit-learn digits (8x8), seeded stratified 80/20 train+val / test"
    elif name == "photos":
        x, y, classes = load_photos_arrays(per_class=40, seed=seed)
        test_x, test_y, _ = load_photos_arrays(per_class=40, seed=10_000 + seed)
        note = "random 64 px crops of 6 scikit-image photos (one class each); test = fresh crops (another seed)"
    else:
        raise ValueError(f"unknown benchmark data set {name!r}; use fashion-<N>, fashion-full, digits or photos")
    train_x, train_y, val_x, val_y = _hold_out(x, y, 0.2, seed, DEFAULT_VAL_MAX)
    return Dataset(name, list(classes), train_x, train_y, val_x, val_y, test_x, test_y, note)


# -- one shoulders run ---------------------------------------------------------------------------------------
def shoulders_fit(data: Dataset, strategy: str, *, seed: int, epochs: int = EPOCHS, image_size: int = IMAGE_SIZE,
                  trainable_blocks: float | None = None, backbone_lr_mult: float | None = None,
                  feature_cache: bool = False) -> dict[str, Any]:
    """Trains with ``TransferClassifier`` on ``data`` and returns test/val accuracy, wall time and the plan.

    ``epochs`` is the common budget; for ``auto`` it caps the advisor's choice the same way (an explicit value
    always wins over the plan). The frozen strategy's head is fitted by L-BFGS, which ignores epochs.
    """
    from shoulders import RunConfig, TransferClassifier

    config = RunConfig()
    config.train.feature_cache = feature_cache
    config.train.backbone_lr_mult = backbone_lr_mult  # None: the plan's (explicit strategies: 0.1)
    clf = TransferClassifier(strategy=strategy, epochs=epochs, image_size=image_size, seed=seed, progress=False,
                             trainable_blocks=trainable_blocks, batch_size=BATCH_SIZE, config=config)
    _, seconds = timed(lambda: clf.fit(data.splits()))
    plan = clf.plan_.to_dict()
    return {"test_accuracy": clf.metrics_.get("test_accuracy"), "val_accuracy": clf.metrics_.get("val_accuracy"),
            "seconds": seconds, "epochs": epochs, "chosen": clf.config_.strategy.name, "plan": plan,
            "trainable_blocks": clf.config_.strategy.trainable_blocks,
            "advisor_seconds": (clf.advice_ or {}).get("seconds")}


def pixels_logreg(data: Dataset, seed: int) -> dict[str, Any]:
    """The floor: logistic regression on raw pixels in [0, 1], C picked on the validation split."""
    from sklearn.linear_model import LogisticRegression

    def flat(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1).astype(np.float32) / 255.0

    start = time.perf_counter()
    best = None
    for c in (0.001, 0.01, 0.1, 1.0):
        model = LogisticRegression(C=c, max_iter=500, random_state=seed).fit(flat(data.train_x), data.train_y)
        val = float((model.predict(flat(data.val_x)) == data.val_y).mean())
        if best is None or val > best[0]:
            best = (val, c, model)
    val, c, model = best  # type: ignore[misc]
    test = float((model.predict(flat(data.test_x)) == data.test_y).mean())
    return {"test_accuracy": test, "val_accuracy": val, "seconds": time.perf_counter() - start, "C": c}


# -- weights for the peers -----------------------------------------------------------------------------------
def timm_weights_file(backbone: str = "tf_efficientnet_lite0") -> Path:
    """The backbone's pretrained weights (what shoulders loads) saved in timm's layout as safetensors.

    Peers load this file through timm itself: ``timm.create_model(name, pretrained=True,
    pretrained_cfg_overlay=dict(file=path))`` — the same weights, with no hub access.
    """
    from safetensors.torch import save_file

    from shoulders import create_backbone

    path = BENCH_DIR / f"{backbone}.timm.safetensors"
    if not path.is_file():
        model, _ = create_backbone(backbone, with_imagenet_head=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def python_env() -> dict[str, str]:
    """The environment for child processes: glibc's tuning, unbuffered output."""
    return {**os.environ, "GLIBC_TUNABLES": GLIBC_TUNABLES, "PYTHONUNBUFFERED": "1"}


def run_child(args: Sequence[str], timeout: float | None = None) -> dict[str, Any]:
    """Runs a Python child process that prints one JSON line last; returns that object (or an error)."""
    proc = subprocess.run(list(args), cwd=ROOT, env=python_env(), capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    return json.loads(lines[-1])


PYTHON = sys.executable
