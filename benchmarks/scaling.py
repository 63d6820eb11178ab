"""Benchmark 5 — scaling: wall time and peak memory of one training epoch as the training set grows.

Each (strategy, size) runs in a fresh process (so its peak resident memory is its own): ``TransferClassifier``
at 64 px, batch 64, **one epoch** over N Fashion-MNIST training images (N/10 per class) with 1000 validation
images, no test set, no feature cache. A fine-tune of E epochs costs about E times the epoch (plus the fixed
start-up); the frozen strategy's cost is one backbone pass over the images plus the L-BFGS head, whatever E is.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from . import common

STRATEGIES = {"frozen": None, "partial top-2": 2, "full": None}
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"sizes": [1000, 5000]},
    "full": {"sizes": [1000, 10000, 60000]},
}


def run(profile: str) -> dict[str, Any]:
    rows = []
    for size in PROFILES[profile]["sizes"]:
        for label in STRATEGIES:
            args = [common.PYTHON, "-m", "benchmarks.scaling", "--worker", "--strategy", label, "--images", str(size)]
            row = {"strategy": label, "images": size, **common.run_child(args, timeout=7200)}
            if "error" in row:
                print(f"  {label} {size}: FAILED {row['error']}", flush=True)
            else:
                print(f"  {label:<14} {size:>6} images: {row['seconds']:7.1f} s, {row['images_per_second']:6.1f} "
                      f"img/s, peak {row['peak_rss_mb']:.0f} MB", flush=True)
            rows.append(row)
    payload = {"rows": rows, "setting": "64 px, batch 64, 1 epoch, 1000 validation images, no test, no cache"}
    payload["table"] = render(payload)
    common.write_result("scaling", profile, payload)
    return payload


def render(payload: dict[str, Any]) -> str:
    rows = []
    for r in payload["rows"]:
        if "error" in r:
            rows.append({"strategy": r["strategy"], "images": r["images"], "seconds": "failed"})
            continue
        rows.append({"strategy": r["strategy"], "images": r["images"], "seconds": f"{r['seconds']:.1f}",
                     "train": f"{r['train_seconds']:.1f}", "rate": f"{r['images_per_second']:.0f}",
                     "per_k": f"{1000 * r['seconds'] / r['images']:.2f}", "rss": f"{r['peak_rss_mb']:.0f}"})
    cols = [("strategy", "strategy"), ("images", "train images"), ("seconds", "wall s"),
            ("train", "epoch s (train+val) / frozen: whole fit"), ("rate", "img/s"), ("per_k", "wall s per 1k images"),
            ("rss", "peak RSS MB")]
    return f"{payload['setting']}.\n\n{common.table(rows, cols)}"


def _worker(strategy: str, images: int) -> dict[str, Any]:
    import numpy as np

    from shoulders import RunConfig, TransferClassifier
    from shoulders.data import DataSplits, Samples, load_fashion_mnist

    per_class = images // 10
    x, y, classes = load_fashion_mnist("train", per_class=per_class if per_class < 6000 else None, seed=0)
    vx, vy, _ = load_fashion_mnist("test")
    keep = np.arange(0, len(vy), len(vy) // 1000)[:1000]
    splits = DataSplits(train=Samples(classes, y, arrays=x), val=Samples(classes, vy[keep], arrays=vx[keep]),
                        test=None, classes=classes, split={"method": "benchmark"})
    config = RunConfig()
    config.train.feature_cache = False
    name = strategy.split()[0]
    clf = TransferClassifier(strategy=name, epochs=1, image_size=common.IMAGE_SIZE, batch_size=common.BATCH_SIZE,
                             trainable_blocks=STRATEGIES[strategy], progress=False, config=config)
    start = time.perf_counter()
    clf.fit(splits)
    seconds = time.perf_counter() - start
    # fine-tuning: the epoch's training time; frozen: the whole fit (features of train + val, then the head)
    train = sum(h["seconds"] for h in clf.history_) if name != "frozen" else seconds
    return {"seconds": seconds, "train_seconds": train, "images_per_second": len(y) / train,
            "peak_rss_mb": common.peak_rss_mb(),
            "val_accuracy": clf.metrics_.get("val_accuracy")}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling")
    parser.add_argument("--worker", action="store_true", required=True)
    parser.add_argument("--strategy", choices=list(STRATEGIES), required=True)
    parser.add_argument("--images", type=int, required=True)
    a = parser.parse_args(sys.argv[1:])
    print(json.dumps(_worker(a.strategy, a.images)), flush=True)
