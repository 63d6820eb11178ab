"""Planner calibration: test accuracy against input resolution × epochs, and the seconds each run took.

The planner (``shoulders.planner``) predicts how accuracy grows with the input resolution (relative to the images'
native size) and with the length of the schedule; this sweep is its evidence. Every row is one fit of
``TransferClassifier`` on the common benchmark splits (``common.dataset``, seed 0): the fine-tuning rows train all
blocks with light augmentation at the quadrant's backbone rate (1.0× for data unlike ImageNet, 0.1× for photos),
as the advisor's plans do; the frozen rows fit the L-BFGS head on features at that resolution.

Fashion-MNIST is tested on a stratified 2 000 of its official 10 000 test images (±0.8 points of standard error),
so that the 160 and 224 px rows cost seconds, not minutes, of prediction.

    python benchmarks/planner_calibration.py --lock /tmp/shoulders-heavy.lock      # every piece, ~20 min on 2 cores
    python benchmarks/planner_calibration.py --datasets digits --lock /tmp/shoulders-heavy.lock
    python benchmarks/planner_calibration.py --datasets photos-2400 --seeds 0 1 2 --lock /tmp/shoulders-heavy.lock
    python benchmarks/planner_calibration.py --fit                                  # fit the curves, print them

``--lock`` takes the machine's lock around each configuration (not the whole sweep), so other heavy jobs can run
between rows; each row's timing is then measured alone. Rows accumulate in ``results/planner_calibration.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Iterator

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

RESULT = common.RESULTS_DIR / "planner_calibration.json"
FASHION_TEST = 2000

# (strategy, image size, epochs) per data set; frozen rows have no epochs. Cut to ~20 min on 2 quiet cores (the
# machine was shared by ~6 jobs): the epoch curve at 2-4 points at 64 px (3 to 100 epochs on the sets unlike
# ImageNet: how the schedule's half-way steps grow with the training-set size), the resolution curve at 2-4 sizes
# with 10 epochs, the frozen features at 1-2 sizes.
GRID: dict[str, list[tuple[str, int, int]]] = {
    "photos": [("full", 64, 3), ("full", 64, 10), ("full", 112, 3), ("full", 112, 10),
               ("frozen", 64, 0), ("frozen", 112, 0)],
    "fashion-100": [("full", 64, 3), ("full", 64, 10), ("full", 112, 10), ("full", 64, 30),
                    ("frozen", 64, 0), ("frozen", 112, 0), ("full", 64, 100)],
    "digits": [("full", 64, 10), ("full", 64, 3), ("full", 112, 10), ("frozen", 64, 0), ("full", 64, 30)],
    "fashion-10": [("full", 64, 10), ("full", 64, 30), ("full", 112, 10), ("full", 224, 10), ("full", 64, 3),
                   ("full", 64, 100)],
    # Quadrant 4 with ten times the test crops (2 400: one error is 0.04 points, where the 240 of "photos" round
    # every recipe to 99-100 %): frozen against fine-tuned at the sizes and epochs a 2-minute plan weighs.
    "photos-2400": [("frozen", 64, 0), ("frozen", 112, 0), ("frozen", 160, 0), ("frozen", 224, 0),
                    ("full", 64, 10), ("full", 64, 30), ("partial-2", 64, 30), ("full", 112, 10),
                    ("partial-2", 112, 10)],
}
SIMILAR = {"photos", "photos-2400"}  # quadrant 4: blocks at 0.1x the head's rate; the others (quadrant 3) at 1.0x
PHOTOS_TEST_PER_CLASS = 400  # "photos-2400": fresh test crops per photograph


@contextlib.contextmanager
def machine_lock(path: str | None) -> Iterator[None]:
    """``flock(2)`` on ``path`` (the same lock ``flock(1)`` takes), or nothing without a path."""
    if not path:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _data(name: str, seed: int = 0) -> common.Dataset:
    if name == "photos-2400":
        from shoulders.data import load_photos_arrays

        data = common.dataset("photos", seed)
        test_x, test_y, _ = load_photos_arrays(per_class=PHOTOS_TEST_PER_CLASS, seed=10_000 + seed)
        return dataclasses.replace(data, name=name, test_x=test_x, test_y=test_y,
                                   note=data.note + f"; {len(test_y)} test crops")
    data = common.dataset(name, seed)
    if name.startswith("fashion-") and len(data.test_y) > FASHION_TEST:
        from shoulders.data.sources import stratified_split

        classes = [str(c) for c in range(len(data.classes))]
        _, keep = stratified_split(data.test_y, classes, FASHION_TEST / len(data.test_y), 0, "calibration test")
        data.test_x, data.test_y = data.test_x[keep], data.test_y[keep]
    return data


def fit_one(data: common.Dataset, strategy: str, size: int, epochs: int, seed: int = 0) -> dict[str, Any]:
    """One fit; accuracy, wall seconds, the per-epoch seconds and the runtime record."""
    from shoulders import RunConfig, TransferClassifier

    name, _, depth = strategy.partition("-")
    config = RunConfig()
    config.train.feature_cache = False  # every frozen row pays its features, as a first plan would
    config.train.backbone_lr_mult = 0.1 if data.name in SIMILAR else 1.0
    config.data.augment = "none" if name == "frozen" else "light"
    clf = TransferClassifier(strategy=name, epochs=epochs or None, image_size=size, seed=seed, progress=False,
                             trainable_blocks=int(depth) if depth else None, batch_size=common.BATCH_SIZE,
                             config=config)
    _, seconds = common.timed(lambda: clf.fit(data.splits()))
    epoch_seconds = [round(r["seconds"], 2) for r in clf.history_ if r.get("seconds")]
    return {"test_accuracy": clf.metrics_.get("test_accuracy"), "val_accuracy": clf.metrics_.get("val_accuracy"),
            "seconds": round(seconds, 2), "epoch_seconds": epoch_seconds,
            "best_epoch": clf.metrics_.get("best_epoch"), "fit_seconds": clf.runtime_.get("seconds")}


def _read() -> dict[str, Any]:
    return json.loads(RESULT.read_text()) if RESULT.is_file() else {"rows": []}


def _write(rows: list[dict[str, Any]]) -> None:
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": "planner_calibration", "command": " ".join(["python", *sys.argv]),
               "machine": common.machine(), "rows": rows}
    RESULT.write_text(json.dumps(payload, indent=1, default=str) + "\n")


def sweep(datasets: list[str], lock: str | None, seeds: tuple[int, ...] = (0,)) -> None:
    rows = {(r["dataset"], r["strategy"], r["image_size"], r["epochs"], r.get("seed", 0)): r
            for r in _read()["rows"]}
    for name, seed in ((n, s) for n in datasets for s in seeds):
        data = _data(name, seed)
        for strategy, size, epochs in GRID[name]:
            key = (name, strategy, size, epochs, seed)
            if key in rows and "error" not in rows[key]:
                continue  # already measured: the sweep resumes where it stopped
            row: dict[str, Any] = {"dataset": name, "strategy": strategy, "image_size": size, "epochs": epochs,
                                   "seed": seed, "sizes": data.sizes(), "started": time.strftime("%H:%M:%S")}
            with machine_lock(lock):
                try:
                    row.update(fit_one(data, strategy, size, epochs, seed))
                except Exception as exc:  # one failed configuration must not lose the others
                    row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                    traceback.print_exc()
            rows[key] = row
            _write(list(rows.values()))
            print(f"{name:<12} s{seed} {strategy:<10} {size:>4} px {epochs:>4} ep: "
                  f"test {common.pct(row.get('test_accuracy'))} in {row.get('seconds', 0):.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(GRID), choices=list(GRID))
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="training draws (rows keyed by seed)")
    p.add_argument("--lock", help="take this lock file around each configuration (the machine's heavy lock)")
    p.add_argument("--fit", action="store_true", help="fit the planner's curves to the saved rows; train nothing")
    args = p.parse_args(argv)
    if args.fit:
        from benchmarks.planner_fit import fit_and_print

        fit_and_print(_read()["rows"])
        return 0
    if os.environ.get("GLIBC_TUNABLES") != common.GLIBC_TUNABLES:  # ~3x faster on the CPU; read at start-up only
        os.execve(sys.executable, [sys.executable, *sys.argv], common.python_env())
    sweep(args.datasets, args.lock, tuple(args.seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
