"""LP-FT: does starting the new head from the linear probe help, in distribution and under a distribution shift?

Fashion-MNIST 100/class (800 train / 200 val, seed-drawn), 64 px, full fine-tuning with light augmentation at the
blocks' rate 1.0× (quadrant 3's recipe), 10 epochs, with ``head_init`` = ``default`` (a fresh linear head) and
``probe`` (LP-FT, Kumar et al. 2022). Each model is tested on a stratified 2 000 of the official test images as
they are, and on the same images rendered differently (never seen in training):

- ``blur``: Gaussian blur, radius 1 px at 28 px (a softer camera);
- ``lowres``: down to 12 px and back up to 28 (a coarser scan);
- ``contrast``: contrast halved around mid-grey (a washed-out print).

    python benchmarks/lpft.py --lock /tmp/shoulders-heavy.lock [--seeds 0 1]

Rows accumulate in ``results/lpft.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageFilter

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402
from benchmarks.planner_calibration import _data, machine_lock  # noqa: E402

RESULT = common.RESULTS_DIR / "lpft.json"


def _per_image(x: np.ndarray, fn: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(fn(Image.fromarray(img))) for img in x])


SHIFTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda x: x,
    "blur": lambda x: _per_image(x, lambda im: im.filter(ImageFilter.GaussianBlur(1.0))),
    "lowres": lambda x: _per_image(x, lambda im: im.resize((12, 12), Image.Resampling.BILINEAR)
                                   .resize(im.size, Image.Resampling.BILINEAR)),
    "contrast": lambda x: (128 + (x.astype(np.float32) - 128) * 0.5).clip(0, 255).astype(np.uint8),
}


def fit_and_test(data: common.Dataset, head_init: str, seed: int, epochs: int) -> dict[str, Any]:
    from shoulders import RunConfig, TransferClassifier

    config = RunConfig()
    config.train.backbone_lr_mult = 1.0
    config.data.augment = "light"
    config.strategy.head_init = head_init
    clf = TransferClassifier(strategy="full", epochs=epochs, image_size=64, seed=seed, progress=False,
                             batch_size=common.BATCH_SIZE, config=config)
    splits = data.splits()
    splits.test = None
    _, seconds = common.timed(lambda: clf.fit(splits))
    row: dict[str, Any] = {"seconds": round(seconds, 1), "val_accuracy": clf.metrics_.get("val_accuracy")}
    for name, shift in SHIFTS.items():
        pred = clf.predict(shift(data.test_x))
        row[f"test_{name}"] = float(np.mean(pred == np.asarray(data.classes, dtype=object)[data.test_y]))
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lock")
    args = p.parse_args(argv)
    if os.environ.get("GLIBC_TUNABLES") != common.GLIBC_TUNABLES:
        os.execve(sys.executable, [sys.executable, *sys.argv], common.python_env())
    rows = json.loads(RESULT.read_text())["rows"] if RESULT.is_file() else []
    for seed in args.seeds:
        data = _data("fashion-100") if seed == 0 else _reseeded(seed)
        for head_init in ("default", "probe"):
            with machine_lock(args.lock):
                row = {"seed": seed, "head_init": head_init, "epochs": args.epochs,
                       "started": time.strftime("%H:%M:%S"), **fit_and_test(data, head_init, seed, args.epochs)}
            rows = [r for r in rows if (r["seed"], r["head_init"], r["epochs"]) != (seed, head_init, args.epochs)]
            rows.append(row)
            RESULT.write_text(json.dumps({"benchmark": "lpft", "command": " ".join(["python", *sys.argv]),
                                          "machine": common.machine(), "rows": rows}, indent=1) + "\n")
            print(json.dumps(row), flush=True)
    return 0


def _reseeded(seed: int) -> common.Dataset:
    data = common.dataset("fashion-100", seed)
    keep = np.random.default_rng(0).permutation(len(data.test_y))[:2000]
    data.test_x, data.test_y = data.test_x[keep], data.test_y[keep]
    return data


if __name__ == "__main__":
    raise SystemExit(main())
