"""Benchmark 1 — accuracy: ``--strategy auto`` against every fixed strategy, and raw pixels as the floor.

Every method sees the same train / validation / test split of each data set and seed (``common.dataset``), at
the same input size (64 px) and the same fine-tuning budget (10 epochs, batch 64, shoulders' defaults otherwise);
the frozen strategy's head is fitted by L-BFGS on cached features (its budget is one pass of the backbone).
The "oracle" is the fixed configuration with the best *validation* accuracy — what a brute-force search over
these configurations would pick — and its test accuracy.

Rows accumulate in ``results/accuracy-<profile>.json`` (keyed by data set, method and seed), so a long profile
can be run in pieces: ``python -m benchmarks --profile full accuracy --datasets photos --seeds 0 1 2``.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any, Callable

from . import common

ORACLE_EXCLUDES = ("pixels logreg", "auto")  # the brute-force search runs shoulders' fixed strategies only


@dataclass(frozen=True)
class Method:
    name: str
    run: Callable[[common.Dataset, int, int], dict[str, Any]]  # (data, seed, epochs) → row fields


def _strategy(name: str, trainable_blocks: int | None = None,
              backbone_lr_mult: float | None = None) -> Callable[[common.Dataset, int, int], dict[str, Any]]:
    return lambda data, seed, epochs: common.shoulders_fit(data, name, seed=seed, epochs=epochs,
                                                           trainable_blocks=trainable_blocks,
                                                           backbone_lr_mult=backbone_lr_mult)


METHODS = {
    "pixels logreg": Method("pixels logreg", lambda data, seed, epochs: common.pixels_logreg(data, seed)),
    "frozen": Method("frozen", _strategy("frozen")),
    "partial top-1": Method("partial top-1", _strategy("partial", 1)),
    "partial top-2": Method("partial top-2", _strategy("partial", 2)),
    "partial top-4": Method("partial top-4", _strategy("partial", 4)),
    "full": Method("full", _strategy("full")),
    # explicit full fine-tuning with the pretrained blocks at the head's rate (the default keeps them at 0.1×)
    "full lr1x": Method("full lr1x", _strategy("full", backbone_lr_mult=1.0)),
    "auto": Method("auto", _strategy("auto")),
}

PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"datasets": ["fashion-100", "digits"], "seeds": [0],
              "methods": ["pixels logreg", "frozen", "full", "auto"]},
    "full": {"datasets": ["fashion-10", "fashion-100", "fashion-1000", "fashion-full", "digits", "photos"],
             "seeds": [0, 1, 2], "methods": list(METHODS),
             # 6000/class: one seed, 3 epochs, no partial depth sweep (10 epochs would be ~35 min per fine-tune)
             "limits": {"fashion-full": {"seeds": [0], "epochs": 3,
                                         "methods": ["pixels logreg", "frozen", "partial top-2", "full",
                                                     "full lr1x", "auto"]}}},
}


def run(profile: str, datasets: list[str] | None = None, seeds: list[int] | None = None,
        methods: list[str] | None = None) -> dict[str, Any]:
    spec = PROFILES[profile]
    previous = common.read_result("accuracy", profile) or {}
    rows = {_key(r): r for r in previous.get("rows", [])}
    for name in datasets or spec["datasets"]:
        limits = spec.get("limits", {}).get(name, {})
        for seed in seeds or limits.get("seeds", spec["seeds"]):
            data = common.dataset(name, seed)
            for method in methods or limits.get("methods", spec["methods"]):
                row = {"dataset": name, "method": method, "seed": seed, "sizes": data.sizes()}
                try:
                    row.update(METHODS[method].run(data, seed, limits.get("epochs", common.EPOCHS)))
                except Exception as exc:  # one failed configuration must not lose the others
                    row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                    traceback.print_exc()
                print(_progress(row), flush=True)
                rows[_key(row)] = row
                common.write_result("accuracy", profile, {"rows": list(rows.values())})
    all_rows = list(rows.values())
    payload = {"rows": all_rows, "summary": summarise(all_rows), "oracle": oracle(all_rows),
               "budget": f"{common.IMAGE_SIZE} px, {common.EPOCHS} epochs for fine-tuning unless the table says "
                         f"otherwise, batch {common.BATCH_SIZE}"}
    payload["table"] = render(payload)
    common.write_result("accuracy", profile, payload)
    return payload


def _key(row: dict[str, Any]) -> tuple[str, str, int]:
    return row["dataset"], row["method"], row["seed"]


def _progress(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"  {row['dataset']:<13} {row['method']:<14} seed {row['seed']}: FAILED {row['error']}"
    chosen = f" (chose {_chosen(row)}, advisor {row.get('advisor_seconds')} s)" if row["method"] == "auto" else ""
    return (f"  {row['dataset']:<13} {row['method']:<14} seed {row['seed']}: test {common.pct(row['test_accuracy'])} "
            f"val {common.pct(row['val_accuracy'])} in {row['seconds']:.0f}s{chosen}")


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per data set and method: mean ± std of test accuracy over seeds, and the median wall time."""
    out = []
    for (name, method), rs in common.group_rows(rows, "dataset", "method").items():
        chosen = sorted({_chosen(r) for r in rs}) if method == "auto" else []
        out.append({"dataset": name, "method": method + (f" → {'/'.join(chosen)}" if chosen else ""),
                    "seeds": len(rs), "test": common.mean_std([r["test_accuracy"] for r in rs]),
                    "val": common.mean_std([r["val_accuracy"] for r in rs]),
                    "seconds": f"{common.summary([r['seconds'] for r in rs])['median']:.0f}", "sizes": rs[0]["sizes"],
                    "epochs": "—" if method in ("pixels logreg", "frozen")
                    or all(r.get("chosen") == "frozen" for r in rs) else rs[0].get("epochs", common.EPOCHS)})
    return out


def _chosen(row: dict[str, Any]) -> str:
    """What auto trained: ``partial top-7 +light`` etc."""
    return common.chosen_label(row.get("chosen"), row.get("trainable_blocks"), (row.get("plan") or {}).get("augment"))


def oracle(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per data set and seed: the brute-force pick (best validation accuracy) against auto, and their costs."""
    out = []
    for (name, seed), rs in sorted(common.group_rows(rows, "dataset", "seed").items()):
        fixed = [r for r in rs if r["method"] not in ORACLE_EXCLUDES]
        auto = next((r for r in rs if r["method"] == "auto"), None)
        if not fixed:
            continue
        pick = max(fixed, key=lambda r: r["val_accuracy"])
        best_test = max(fixed, key=lambda r: r["test_accuracy"])
        out.append({"dataset": name, "seed": seed, "configs": len(fixed), "oracle": pick["method"],
                    "oracle_test": pick["test_accuracy"], "best_test": best_test["test_accuracy"],
                    "best_test_method": best_test["method"], "search_seconds": sum(r["seconds"] for r in fixed),
                    "auto": _chosen(auto) if auto else None, "auto_test": auto["test_accuracy"] if auto else None,
                    "auto_seconds": auto["seconds"] if auto else None,
                    "advisor_seconds": auto.get("advisor_seconds") if auto else None})
    return out


def render(payload: dict[str, Any]) -> str:
    acc = common.table(payload["summary"], [("dataset", "data"), ("sizes", "train/val/test"), ("method", "method"),
                                            ("epochs", "epochs"), ("seeds", "seeds"), ("test", "test acc %"),
                                            ("val", "val acc %"), ("seconds", "median s")])
    rows = [{**o, "oracle_test": common.pct(o["oracle_test"]), "best_test": common.pct(o["best_test"]),
             "auto_test": common.pct(o["auto_test"]), "search_seconds": f"{o['search_seconds']:.0f}",
             "auto_seconds": "—" if o["auto_seconds"] is None else f"{o['auto_seconds']:.0f}"}
            for o in payload["oracle"]]
    orc = common.table(rows, [("dataset", "data"), ("seed", "seed"), ("configs", "configs searched"),
                              ("oracle", "oracle pick (best val)"), ("oracle_test", "its test %"),
                              ("best_test", "best test %"), ("search_seconds", "search s"), ("auto", "auto chose"),
                              ("auto_test", "auto test %"), ("auto_seconds", "auto s")])
    return f"Budget: {payload['budget']}.\n\n{acc}\n\n{orc}"
