"""The centre crop on small images: the backbone's convention (keep the central 87.5 %) against the whole image.

timm evaluates EfficientNet-Lite0 by resizing the shorter side to ``size / 0.875`` and cutting out the centre, the
ImageNet convention for photos with a background margin. Small, tightly framed images (an 8×8 digit, a 28 px
Fashion-MNIST garment whose sleeves reach the edge) lose object pixels that way. Each row trains one fixed recipe
twice on the same split and seed, once per crop, with a fixed number of epochs so that a machine's speed cannot
change what is compared (budgeted runs would train a different number of epochs on a loaded machine)::

    flock /tmp/shoulders-heavy.lock python benchmarks/crop.py --sets fashion-100 digits photos --seeds 0 1 2

Recipes (``--recipes``): ``frozen`` (the L-BFGS head on cached features: the crop decides the features),
``partial`` (auto's small-data recipe: top 4 blocks, light augmentation — random crops in training, so the crop
only changes evaluation — label smoothing 0.1, the blocks at the head's rate, 10 epochs) and ``full`` (the large-data
recipe's form: every block, no augmentation, so training sees the same crop as the test; 10 epochs, ``--epochs``).
Results: ``results/crop.json`` (rows keyed by set, recipe, seed and crop).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402
from benchmarks.planner_calibration import machine_lock  # noqa: E402

RESULT = common.RESULTS_DIR / "crop.json"
CROPS = (0.875, 1.0)
RECIPES: dict[str, dict[str, Any]] = {
    "frozen": {"strategy": "frozen"},
    "partial": {"strategy": "partial", "trainable_blocks": 4, "augment": "light", "label_smoothing": 0.1,
                "backbone_lr_mult": 1.0},
    "full": {"strategy": "full", "augment": "none", "backbone_lr_mult": 1.0},
}


def run_one(name: str, recipe: str, seed: int, crop: float, size: int, epochs: int) -> dict[str, Any]:
    """One fixed-recipe ``fit`` at ``crop``; its test and validation accuracy and wall time."""
    from shoulders import RunConfig, TransferClassifier

    data = common.dataset(name, seed)
    settings = {**RECIPES[recipe], "crop_pct": crop, "image_size": size, "epochs": epochs, "seed": seed,
                "batch_size": common.BATCH_SIZE, "progress": False}
    clf = TransferClassifier(config=RunConfig().override(settings))
    _, seconds = common.timed(lambda: clf.fit(data.splits()))
    return {"test_accuracy": clf.metrics_.get("test_accuracy"), "val_accuracy": clf.metrics_.get("val_accuracy"),
            "seconds": round(seconds, 1), "crop_pct": clf.config_.data.crop_pct,
            "epochs_run": clf.metrics_.get("epochs_run")}


def key(r: dict[str, Any]) -> tuple[Any, ...]:
    return r["dataset"], r["recipe"], r["size"], r["epochs"], r["seed"], r["crop"]


def paired(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per set and recipe, the whole image's test accuracy minus the crop's, seed by seed (points)."""
    by = {key(r): r for r in rows if r.get("test_accuracy") is not None}
    out: dict[tuple[Any, ...], list[float]] = {}
    for k, r in by.items():
        other = by.get((*k[:5], CROPS[0]))
        if k[5] == CROPS[1] and other:
            out.setdefault(k[:4], []).append(100 * (r["test_accuracy"] - other["test_accuracy"]))
    return [{"dataset": k[0], "recipe": k[1], "size": k[2], "epochs": k[3], "gains": [round(g, 2) for g in v],
             "mean": round(sum(v) / len(v), 2)} for k, v in sorted(out.items())]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", default=["fashion-100", "digits", "photos"])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lock")
    p.add_argument("--table", action="store_true", help="print the saved pairs; run nothing")
    args = p.parse_args(argv)
    rows = json.loads(RESULT.read_text())["rows"] if RESULT.is_file() else []
    if args.table:
        print(json.dumps(paired(rows), indent=1))
        return 0
    if os.environ.get("GLIBC_TUNABLES") != common.GLIBC_TUNABLES:  # glibc reads it at start-up only
        os.execve(sys.executable, [sys.executable, *sys.argv], common.python_env())
    for name in args.sets:
        for recipe in args.recipes:
            for seed in args.seeds:
                for crop in CROPS:
                    row = {"dataset": name, "recipe": recipe, "size": args.size, "epochs": args.epochs,
                           "seed": seed, "crop": crop, "started": time.strftime("%H:%M:%S")}
                    with machine_lock(args.lock):
                        row.update(run_one(name, recipe, seed, crop, args.size, args.epochs))
                    rows = [r for r in rows if key(r) != key(row)] + [row]
                    RESULT.write_text(json.dumps({"benchmark": "crop", "machine": common.machine(), "rows": rows,
                                                  "paired": paired(rows)}, indent=1) + "\n")
                    print(json.dumps(row), flush=True)
    print(json.dumps(paired(rows), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
