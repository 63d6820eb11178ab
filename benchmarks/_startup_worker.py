"""One measured job of ``benchmarks/startup.py``, run as a script in a fresh process with ``PYTHONPATH`` set to
the shoulders tree under test (this tree, or the ``before`` one): it imports nothing from ``benchmarks`` so that
the same file measures both trees. Prints one JSON line.

    python benchmarks/_startup_worker.py fit --images 60000 --size 64 [--cache DIR]
    python benchmarks/_startup_worker.py predict --files DIR [--run RUN_DIR] --rounds 3
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))


def fashion_splits(images: int, val: int, seed: int = 0) -> Any:
    """``images`` Fashion-MNIST training images (a tenth per class) and ``val`` of the official test images."""
    import numpy as np

    from shoulders.data import DataSplits, Samples, load_fashion_mnist

    per_class = images // 10
    x, y, classes = load_fashion_mnist("train", per_class=per_class if per_class < 6000 else None, seed=seed)
    vx, vy, _ = load_fashion_mnist("test")
    keep = np.arange(0, len(vy), len(vy) // val)[:val]
    return DataSplits(train=Samples(classes, y, arrays=x), val=Samples(classes, vy[keep], arrays=vx[keep]),
                      test=None, classes=classes, split={"method": "benchmark"})


def fit(images: int, size: int | None, cache: str | None) -> dict[str, Any]:
    """A frozen fit, in-process seconds from data in memory to the fitted head; the feature cache in ``cache``."""
    if cache:
        os.environ["SHOULDERS_CACHE_DIR"] = cache
    from shoulders import RunConfig, TransferClassifier

    splits = fashion_splits(images, val=1000 if images >= 10000 else images // 5)
    config = RunConfig()
    config.train.feature_cache = cache is not None
    clf = TransferClassifier(strategy="frozen", image_size=size, batch_size=64, progress=False, config=config)
    start = time.perf_counter()
    clf.fit(splits)
    seconds = time.perf_counter() - start
    head = sum(float(h.get("seconds") or 0.0) for h in clf.history_)
    return {"seconds": seconds, "head_seconds": head if head > 0 else None, "peak_rss_mb": peak_rss_mb(),
            "val_accuracy": clf.metrics_.get("val_accuracy"), "cache": getattr(clf, "feature_cache_", {}),
            "images": len(splits.train) + len(splits.val)}


def predict(files: str, run: str | None, rounds: int) -> dict[str, Any]:
    """``predict_top_k`` over every file in ``files`` against a bare timm loop with the same model, alternately."""
    import timm.data
    import torch
    from PIL import Image

    from shoulders import TransferClassifier

    paths = sorted(str(p) for p in Path(files).iterdir())
    clf = TransferClassifier.load(run) if run else TransferClassifier.pretrained()
    model = clf.model_
    cfg = dict(clf.data_config_, input_size=tuple(clf.data_config_["input_size"]))
    transform = timm.data.create_transform(**{k: cfg[k] for k in ("input_size", "interpolation", "mean", "std",
                                                                 "crop_pct", "crop_mode")})

    # the same work as the bare loop: one view per image (trees with test-time augmentation turn it on by default
    # for the ImageNet head, which multiplies the work by its number of views)
    plain = {"tta": False} if "tta" in inspect.signature(clf.predict_top_k).parameters else {}

    def ours() -> None:
        clf.predict_top_k(paths, k=3, **plain)

    def bare() -> None:  # what a user writes: decode, transform, batches of 64, fp32, inference mode
        model.eval()
        with torch.inference_mode():
            for i in range(0, len(paths), 64):
                x = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths[i:i + 64]])
                torch.softmax(model(x), 1).topk(3)

    rates: dict[str, list[float]] = {"ours": [], "bare": []}
    ours(), bare()  # warm-up
    for r in range(rounds):
        for name in (("ours", "bare") if r % 2 == 0 else ("bare", "ours")):
            start = time.perf_counter()
            (ours if name == "ours" else bare)()
            rates[name].append(len(paths) / (time.perf_counter() - start))
    o, b = statistics.median(rates["ours"]), statistics.median(rates["bare"])
    return {"files": len(paths), "shoulders": o, "bare": b, "ratio": o / b, "rounds": rates,
            "mode": "run folder" if run else "ImageNet head", "input_size": clf.data_config_["input_size"][-1]}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/_startup_worker.py")
    p.add_argument("job", choices=["fit", "predict"])
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--cache", default=None)
    p.add_argument("--files", default=None)
    p.add_argument("--run", default=None)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    result = fit(a.images, a.size, a.cache) if a.job == "fit" else predict(a.files, a.run, a.rounds)
    print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
