"""The planner at a budget: what ``TransferClassifier(budget=...)`` chose, its predicted and actual wall time, and
its test accuracy (issue 12's "Numbers to reach").

Each run is one ``fit`` on the common benchmark splits (``common.dataset``; Fashion-MNIST tested on its official
10 000 test images, which count in the budget like everything else in ``fit``), from a cold start of the planner
(the throughput cache is emptied first, so the probe's cost is in the figure) unless ``--warm``.

    flock /tmp/shoulders-heavy.lock python benchmarks/planner_runs.py --runs fashion-100:2m fashion-100:10m \
        digits:2m photos:2m

Rows accumulate in ``results/planner_runs.json`` (keyed by data set, budget and seed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402
from benchmarks.planner_calibration import machine_lock  # noqa: E402

RESULT = common.RESULTS_DIR / "planner_runs.json"


def run_one(name: str, budget: str, seed: int, warm: bool) -> dict[str, Any]:
    from shoulders import TransferClassifier

    data = common.dataset(name, seed)
    cache = Path(tempfile.mkdtemp(prefix="shoulders-plan-")) if not warm else None
    if cache:
        os.environ["SHOULDERS_CACHE_DIR"] = str(cache)
    try:
        clf = TransferClassifier(strategy="auto", budget=budget, seed=seed, progress=False,
                                 batch_size=common.BATCH_SIZE)
        _, seconds = common.timed(lambda: clf.fit(data.splits()))
    finally:
        if cache:
            shutil.rmtree(cache, ignore_errors=True)
            os.environ.pop("SHOULDERS_CACHE_DIR", None)
    recipe = clf.plan_.recipe or {}
    return {"test_accuracy": clf.metrics_.get("test_accuracy"), "val_accuracy": clf.metrics_.get("val_accuracy"),
            "seconds": round(seconds, 1), "predicted_seconds": recipe.get("predicted_seconds"),
            "summary": recipe.get("summary"), "expected_accuracy": recipe.get("expected_accuracy"),
            "chosen": common.chosen_label(clf.config_.strategy.name, clf.config_.strategy.trainable_blocks,
                                          clf.config_.data.augment),
            "image_size": clf.config_.data.image_size, "epochs_planned": clf.config_.train.epochs,
            "epochs_run": clf.metrics_.get("epochs_run"), "head_init": clf.config_.strategy.head_init,
            "replans": clf.runtime_.get("replans"), "timing": clf.runtime_.get("timing")}


def table(rows: list[dict[str, Any]]) -> str:
    out = [{**r, "test": common.pct(r["test_accuracy"]), "expected": common.pct(r.get("expected_accuracy")),
            "ratio": f"{r['seconds'] / r['predicted_seconds']:.2f}" if r.get("predicted_seconds") else "—",
            "plan": f"{r['chosen']}, {r['image_size']} px, {r['epochs_run']}/{r['epochs_planned']} epochs"
                    + (f", {len(r['replans'])} re-plan(s)" if r.get("replans") else "")} for r in rows]
    return common.table(out, [("dataset", "data"), ("budget", "budget"), ("seed", "seed"),
                              ("plan", "what it chose"), ("predicted_seconds", "predicted s"), ("seconds", "actual s"),
                              ("ratio", "actual / predicted"), ("expected", "expected %"), ("test", "test %"),
                              ("load", "load avg")])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, help="DATASET:BUDGET, e.g. fashion-100:2m")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--warm", action="store_true", help="keep the throughput cache (the second plan's cost)")
    p.add_argument("--lock")
    p.add_argument("--table", action="store_true", help="print the saved rows as a Markdown table; run nothing")
    args = p.parse_args(argv)
    if args.table:
        print(table(json.loads(RESULT.read_text())["rows"]))
        return 0
    if os.environ.get("GLIBC_TUNABLES") != common.GLIBC_TUNABLES:
        os.execve(sys.executable, [sys.executable, *sys.argv], common.python_env())
    rows = json.loads(RESULT.read_text())["rows"] if RESULT.is_file() else []
    for spec in args.runs:
        name, budget = spec.split(":")
        for seed in args.seeds:
            with machine_lock(args.lock):
                row = {"dataset": name, "budget": budget, "seed": seed, "started": time.strftime("%H:%M:%S"),
                       "load": os.getloadavg()[0], **run_one(name, budget, seed, args.warm)}
            rows = [r for r in rows if (r["dataset"], r["budget"], r["seed"]) != (name, budget, seed)] + [row]
            RESULT.write_text(json.dumps({"benchmark": "planner_runs", "command": " ".join(["python", *sys.argv]),
                                          "machine": common.machine(), "rows": rows}, indent=1) + "\n")
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
