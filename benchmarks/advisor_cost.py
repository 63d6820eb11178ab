"""Benchmark 4 — the advisor's cost: its wall time against the brute-force search it replaces.

The advisor (``shoulders.advisor.advise``) is timed here on the accuracy benchmark's data sets and seeds; the
brute force is the sum of the wall times of the fixed configurations that ``accuracy`` trained on the same split
(so run ``accuracy`` first in the same profile). The brute-force oracle of issue 4
(``benchmarks/advisor_oracle.py``, results in ``results/advisor_oracle_<data>.json``) is summarised alongside,
from its own files: this benchmark does not re-run it.
"""

from __future__ import annotations

import json
from typing import Any

from . import common

PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"datasets": ["fashion-100", "digits"], "seeds": [0]},
    "full": {"datasets": ["fashion-10", "fashion-100", "fashion-1000", "digits", "photos"], "seeds": [0, 1, 2]},
}


def run(profile: str) -> dict[str, Any]:
    spec = PROFILES[profile]
    accuracy = common.read_result("accuracy", profile) or {}
    rows = []
    for name in spec["datasets"]:
        for seed in spec["seeds"]:
            fixed = [r for r in accuracy.get("rows", []) if r["dataset"] == name and r["seed"] == seed
                     and "error" not in r and r["method"] not in ("pixels logreg", "auto")]
            row: dict[str, Any] = {"dataset": name, "seed": seed, "configs": len(fixed),
                                   "search_seconds": sum(r["seconds"] for r in fixed) if fixed else None}
            if fixed:
                pick = max(fixed, key=lambda r: r["val_accuracy"])
                row.update(oracle=pick["method"], oracle_test=pick["test_accuracy"])
            row.update(_time_advisor(name, seed))
            if row.get("advise_seconds") and row["search_seconds"]:
                row["ratio"] = row["search_seconds"] / row["advise_seconds"]
            print(f"  {name} seed {seed}: {row}", flush=True)
            rows.append(row)
    payload = {"rows": rows, "oracle_files": oracle_files()}
    payload["table"] = render(payload)
    common.write_result("advisor_cost", profile, payload)
    return payload


def _time_advisor(name: str, seed: int) -> dict[str, Any]:
    try:
        from shoulders.advisor import advise
    except ImportError as exc:
        return {"advisor": f"unavailable ({exc})"}
    data = common.dataset(name, seed)
    try:
        advice, seconds = common.timed(lambda: advise(data.splits(), image_size=common.IMAGE_SIZE, seed=seed,
                                                      progress=False))
    except Exception as exc:  # the advisor is young: report its failure, keep the other rows
        return {"advisor": f"failed ({type(exc).__name__}: {exc})"}
    plan = advice.plan.to_dict()
    blocks = f" top-{plan.get('trainable_blocks')}" if plan["strategy"] == "partial" else ""
    return {"advise_seconds": seconds, "plan": plan["strategy"] + blocks + f", {plan['epochs']} ep, "
            f"augment {plan['augment']}"}


def oracle_files() -> list[dict[str, Any]]:
    """One row per ``advisor_oracle_<data>.json`` that has both the grid and the advisor's plan."""
    out = []
    for path in sorted(common.RESULTS_DIR.glob("advisor_oracle_*.json")):
        r = json.loads(path.read_text())
        if not r.get("grid") or "plan" not in r or "advice" not in r:
            continue
        best_label, best = max(r["grid"].items(), key=lambda kv: kv[1]["test_accuracy"])
        out.append({"dataset": r["dataset"], "budget": r.get("budget"), "configs": len(r["grid"]),
                    "search_seconds": sum(v["seconds"] for v in r["grid"].values()),
                    "advise_seconds": r["advice"].get("seconds"), "plan": r["plan"]["label"],
                    "plan_test": r["plan"]["test_accuracy"], "plan_seconds": r["plan"]["seconds"],
                    "best": best_label, "best_test": best["test_accuracy"], "file": path.name})
    return out


def render(payload: dict[str, Any]) -> str:
    def sec(v: Any) -> str:
        return "—" if v is None else f"{v:.1f}"

    rows = [{**r, "search_seconds": sec(r.get("search_seconds")), "advise_seconds": sec(r.get("advise_seconds")),
             "oracle_test": common.pct(r.get("oracle_test")), "ratio": f"{r['ratio']:.0f}x" if "ratio" in r else "—",
             "plan": r.get("plan") or r.get("advisor", "—")} for r in payload["rows"]]
    ours = common.table(rows, [("dataset", "data"), ("seed", "seed"), ("advise_seconds", "advise s"),
                               ("plan", "plan"), ("configs", "configs in search"),
                               ("search_seconds", "brute force s"), ("ratio", "search / advise"),
                               ("oracle", "search's pick"), ("oracle_test", "its test %")])
    files = [{**o, "search_seconds": sec(o["search_seconds"]), "advise_seconds": sec(o["advise_seconds"]),
              "plan_test": common.pct(o["plan_test"]), "best_test": common.pct(o["best_test"])}
             for o in payload["oracle_files"]]
    theirs = common.table(files, [("dataset", "data (advisor_oracle.py)"), ("configs", "configs"),
                                  ("search_seconds", "brute force s"), ("advise_seconds", "advise s"),
                                  ("plan", "plan"), ("plan_test", "plan test %"), ("best", "best config"),
                                  ("best_test", "best test %")]) if files else "(no advisor_oracle results yet)"
    return f"{ours}\n\nFrom benchmarks/advisor_oracle.py's own results:\n\n{theirs}"
