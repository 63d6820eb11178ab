"""Benchmark 3 — throughput: shoulders' own code paths against a bare timm loop, in one process, on one input.

- **Loop overhead** (model-bound): shoulders' ``extract_features`` and ``train_one_epoch`` against a hand-written
  loop over the *same* pre-made batches, same model, same precision, memory format and thread count. The two run
  alternately, round after round; images/s is the median over rounds, and the ratio is shoulders / bare.
- **Data path** (end to end, 64 px): shoulders' ``ImageDataset`` + ``make_loader`` + the same loop, against a
  minimal ``Dataset`` that turns the same uint8 arrays into PIL images and applies the same timm transform.
- **Feature cache** (strategy 3): a frozen fit with an empty cache, then the same fit again (features from disk).
"""

from __future__ import annotations

import copy
import os
import statistics
import tempfile
import time
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import common

MODES = {  # name → (autocast precision, channels_last)
    "fp32": ("fp32", False),
    "channels_last": ("fp32", True),
    "bf16": ("bf16", False),
    "channels_last+bf16": ("bf16", True),
}
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"sizes": [64], "modes": ["fp32", "channels_last", "bf16"], "rounds": 3,
              "cache_data": "fashion-100", "infer_batches": {64: 8, 112: 4}, "train_batches": {64: 3, 112: 2}},
    "full": {"sizes": [64, 112, 224], "modes": list(MODES), "rounds": 5, "cache_data": "fashion-1000",
             "infer_batches": {64: 16, 112: 8, 224: 3}, "train_batches": {64: 6, 112: 3, 224: 2}},
}


def run(profile: str) -> dict[str, Any]:
    from shoulders.data import load_fashion_mnist

    spec = PROFILES[profile]
    images, labels, _ = load_fashion_mnist("train", per_class=40, seed=0)  # 400 real images, reused in batches
    rows = []
    for size in spec["sizes"]:
        for mode in spec["modes"]:
            for task in ("features", "train step"):
                count = spec["infer_batches" if task == "features" else "train_batches"][size]
                row = _compare(task, size, mode, images, labels, spec["rounds"], count)
                print(f"  {task:<10} {size:>3} px {mode:<18} shoulders {row['shoulders']:7.1f}  bare "
                      f"{row['bare']:7.1f} img/s  ratio {row['ratio']:.3f}", flush=True)
                rows.append(row)
    pipeline = [_pipeline(task, images, labels, spec["rounds"],
                          spec["infer_batches" if task == "features" else "train_batches"][64])
                for task in ("features", "train step")]
    for row in pipeline:
        print(f"  pipeline {row['task']}: shoulders {row['shoulders']:.1f} bare {row['bare']:.1f} img/s "
              f"ratio {row['ratio']:.3f}", flush=True)
    cache = _feature_cache(spec["cache_data"])
    payload = {"rows": rows, "pipeline": pipeline, "cache": cache, "batch_size": common.BATCH_SIZE,
               "threads": torch.get_num_threads(), "rounds": spec["rounds"]}
    payload["table"] = render(payload)
    common.write_result("throughput", profile, payload)
    return payload


# -- model-bound comparison ----------------------------------------------------------------------------------
def _batches(images: np.ndarray, labels: np.ndarray, size: int, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` batches of 64 real images through shoulders' eval transform (made once, shared by both)."""
    from shoulders.data import create_transforms, resolve_data_config
    from shoulders.models import create_backbone

    backbone, _ = create_backbone("tf_efficientnet_lite0", pretrained=False)
    _, eval_tf = create_transforms(resolve_data_config(backbone, size))
    n = common.BATCH_SIZE * count
    idx = np.arange(n) % len(images)
    x = torch.stack([eval_tf(Image.fromarray(images[i]).convert("RGB")) for i in idx])
    y = torch.from_numpy(labels[idx])
    return [(x[i:i + common.BATCH_SIZE], y[i:i + common.BATCH_SIZE]) for i in range(0, n, common.BATCH_SIZE)]


def _compare(task: str, size: int, mode: str, images: np.ndarray, labels: np.ndarray, rounds: int,
             count: int) -> dict[str, Any]:
    """One task at one size and mode: (shoulders, bare) images/s over ``count`` batches per round."""
    from shoulders.models import create_transfer_model
    from shoulders.train import Precision, extract_features, train_one_epoch

    precision_name, channels_last = MODES[mode]
    precision = Precision(train=precision_name, inference=precision_name)
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model, _ = create_transfer_model("tf_efficientnet_lite0", 10)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    criterion = nn.CrossEntropyLoss()
    if task == "features":
        batches = _batches(images, labels, size, count)
        backbone = model.backbone.eval()

        def ours() -> None:
            extract_features(backbone, batches, cpu, precision=precision, channels_last=channels_last,
                             progress=False)

        def bare() -> None:
            with torch.inference_mode(), _autocast(precision_name):
                for x, _ in batches:
                    backbone(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
    else:
        batches = _batches(images, labels, size, count)
        ours_model, bare_model = model.train(), copy.deepcopy(model).train()
        ours_opt = torch.optim.AdamW(ours_model.parameters(), lr=1e-4)
        bare_opt = torch.optim.AdamW(bare_model.parameters(), lr=1e-4)

        def ours() -> None:
            train_one_epoch(ours_model, criterion, ours_opt, batches, cpu, epoch=0, precision=precision,
                            channels_last=channels_last, progress=False)

        def bare() -> None:
            for x, y in batches:
                x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
                with _autocast(precision_name):
                    loss = criterion(bare_model(x), y)
                bare_opt.zero_grad(set_to_none=True)
                loss.backward()
                bare_opt.step()

    images_per_round = sum(len(y) for _, y in batches)
    ours_rates, bare_rates = _alternate(ours, bare, images_per_round, rounds)
    return _row(task, size, mode, ours_rates, bare_rates)


def _autocast(precision: str) -> Any:
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def _alternate(ours: Callable[[], None], bare: Callable[[], None], images: int,
               rounds: int) -> tuple[list[float], list[float]]:
    """Images/s of each, one warm-up call apiece, then ``rounds`` rounds with the order swapped every round."""
    ours()
    bare()
    ours_rates, bare_rates = [], []
    for r in range(rounds):
        for name in (("ours", "bare") if r % 2 == 0 else ("bare", "ours")):
            fn, rates = (ours, ours_rates) if name == "ours" else (bare, bare_rates)
            start = time.perf_counter()
            fn()
            rates.append(images / (time.perf_counter() - start))
    return ours_rates, bare_rates


def _row(task: str, size: int, mode: str, ours: list[float], bare: list[float]) -> dict[str, Any]:
    ratios = [o / b for o, b in zip(ours, bare)]
    return {"task": task, "size": size, "mode": mode, "shoulders": statistics.median(ours),
            "bare": statistics.median(bare), "ratio": statistics.median(ours) / statistics.median(bare),
            "ratio_per_round_median": statistics.median(ratios), "shoulders_rounds": ours, "bare_rounds": bare}


# -- end to end, with the data path -------------------------------------------------------------------------
class _BareDataset(torch.utils.data.Dataset):
    """What a user would write: uint8 array → PIL RGB → transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Any) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i]).convert("RGB")), int(self.labels[i])


def _pipeline(task: str, images: np.ndarray, labels: np.ndarray, rounds: int, count: int) -> dict[str, Any]:
    """64 px, channels_last, the precision shoulders resolves here (``auto``), images from uint8 arrays."""
    from shoulders.data import ImageDataset, Samples, create_transforms, make_loader, resolve_data_config
    from shoulders.models import create_transfer_model
    from shoulders.train import extract_features, resolve_precision, train_one_epoch

    cpu = torch.device("cpu")
    precision = resolve_precision("auto", cpu, fixed_features=task == "features")
    name = precision.inference if task == "features" else precision.train
    torch.manual_seed(0)
    model, _ = create_transfer_model("tf_efficientnet_lite0", 10)
    model.to(memory_format=torch.channels_last)
    _, eval_tf = create_transforms(resolve_data_config(model.backbone, 64))
    n = common.BATCH_SIZE * count
    x, y = images[:n], labels[:n]
    ours_loader = make_loader(ImageDataset(Samples([str(i) for i in range(10)], y, arrays=x), eval_tf),
                              common.BATCH_SIZE, shuffle=task != "features", device=cpu)
    bare_loader = torch.utils.data.DataLoader(_BareDataset(x, y, eval_tf), batch_size=common.BATCH_SIZE,
                                              shuffle=task != "features")
    criterion = nn.CrossEntropyLoss()
    if task == "features":
        backbone = model.backbone.eval()

        def ours() -> None:
            extract_features(backbone, ours_loader, cpu, precision=precision, channels_last=True, progress=False)

        def bare() -> None:
            with torch.inference_mode(), _autocast(name):
                for xb, _ in bare_loader:
                    backbone(xb.contiguous(memory_format=torch.channels_last))
    else:
        ours_model, bare_model = model.train(), copy.deepcopy(model).train()
        ours_opt = torch.optim.AdamW(ours_model.parameters(), lr=1e-4)
        bare_opt = torch.optim.AdamW(bare_model.parameters(), lr=1e-4)

        def ours() -> None:
            train_one_epoch(ours_model, criterion, ours_opt, ours_loader, cpu, epoch=0, precision=precision,
                            channels_last=True, progress=False)

        def bare() -> None:
            for xb, yb in bare_loader:
                with _autocast(name):
                    loss = criterion(bare_model(xb.contiguous(memory_format=torch.channels_last)), yb)
                bare_opt.zero_grad(set_to_none=True)
                loss.backward()
                bare_opt.step()

    ours_rates, bare_rates = _alternate(ours, bare, n, rounds)
    return _row(task, 64, f"pipeline, channels_last, {name}", ours_rates, bare_rates)


# -- strategy 3's feature cache ------------------------------------------------------------------------------
def _feature_cache(name: str) -> dict[str, Any]:
    from shoulders import RunConfig, TransferClassifier

    data = common.dataset(name, 0)
    splits = data.splits()
    previous = os.environ.get("SHOULDERS_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="shoulders-bench-cache-") as cache_dir:
        os.environ["SHOULDERS_CACHE_DIR"] = cache_dir
        try:
            times, accs, hits = [], [], []
            for _ in range(2):
                config = RunConfig()
                config.train.feature_cache = True
                clf = TransferClassifier(strategy="frozen", image_size=common.IMAGE_SIZE, progress=False,
                                         config=config)
                _, seconds = common.timed(lambda: clf.fit(splits))
                times.append(seconds)
                accs.append(clf.metrics_.get("test_accuracy"))
                hits.append(clf.feature_cache_)
        finally:
            if previous is None:
                os.environ.pop("SHOULDERS_CACHE_DIR", None)
            else:
                os.environ["SHOULDERS_CACHE_DIR"] = previous
    images = len(data.train_y) + len(data.val_y) + len(data.test_y)
    print(f"  feature cache on {name} ({images} images): first {times[0]:.1f} s, second {times[1]:.1f} s", flush=True)
    return {"data": name, "images": images, "first_seconds": times[0], "second_seconds": times[1],
            "speedup": times[0] / times[1], "test_accuracy": accs, "cache": hits}


def render(payload: dict[str, Any]) -> str:
    rows = [{"task": r["task"], "size": r["size"], "mode": r["mode"], "ours": f"{r['shoulders']:.1f}",
             "bare": f"{r['bare']:.1f}", "ratio": f"{r['ratio']:.3f}"} for r in payload["rows"] + payload["pipeline"]]
    cols = [("task", "task"), ("size", "px"), ("mode", "precision / layout"), ("ours", "shoulders img/s"),
            ("bare", "bare timm loop img/s"), ("ratio", "ratio")]
    c = payload["cache"]
    cache = (f"Feature cache (frozen strategy, {c['data']}, {c['images']} images incl. test, 64 px): first fit "
             f"{c['first_seconds']:.1f} s, second fit {c['second_seconds']:.1f} s ({c['speedup']:.1f}x).")
    return (f"Batch {payload['batch_size']}, {payload['threads']} threads, median of {payload['rounds']} alternating "
            f"rounds.\n\n{common.table(rows, cols)}\n\n{cache}")
