"""Benchmark — the frozen strategy's head solver: scikit-learn's (before issue 13) against the torch one, on the
very same features.

For each data set and seed (the accuracy benchmark's splits, :func:`common.dataset`), the pooled features of
``tf_efficientnet_lite0`` at 64 px are extracted once, as the frozen strategy extracts them (eval transform,
the precision ``auto`` resolves to, channels_last); then both solvers fit a head on them and the table shows
val and test accuracy and the solver's seconds. The old solver is ``shoulders/train/head_solver.py`` of the
``before`` commit (``git show``), loaded as a stand-alone module.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch

from . import common

BEFORE = "d6d4a27"
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"datasets": {"fashion-100": [0], "digits": [0], "photos": [0]}},
    "full": {"datasets": {"fashion-100": [0, 1, 2], "digits": [0, 1, 2], "photos": [0, 1, 2],
                          "fashion-full": [0]}},
}


def run(profile: str) -> dict[str, Any]:
    old = _old_solver(BEFORE)
    from shoulders.train.head_solver import fit_linear_head

    rows = []
    for name, seeds in PROFILES[profile]["datasets"].items():
        for seed in seeds:
            data = common.dataset(name, seed)
            feats, extract_s = common.timed(lambda: _features(data))
            for solver, fn in (("scikit-learn (before)", old.fit_linear_head), ("torch L-BFGS", fit_linear_head)):
                row = {"dataset": name, "seed": seed, "solver": solver, "extract_seconds": extract_s,
                       **_solve(fn, feats, len(data.classes), seed)}
                print(f"  {name:<12} seed {seed} {solver:<22} val {row['val_accuracy']:.4f} test "
                      f"{row['test_accuracy']:.4f}  {row['seconds']:.1f} s (features {extract_s:.0f} s)", flush=True)
                rows.append(row)
    payload = {"rows": rows, "before": BEFORE, "table": ""}
    payload["table"] = render(payload)
    common.write_result("head_solver", profile, payload)
    return payload


def _old_solver(ref: str) -> Any:
    """The before commit's head_solver.py (numpy, torch, scikit-learn only), imported from a temporary file."""
    source = subprocess.run(["git", "show", f"{ref}:shoulders/train/head_solver.py"], cwd=common.ROOT,
                            capture_output=True, text=True, check=True).stdout
    path = common.BENCH_DIR / f"head_solver_{ref}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"head_solver_{ref}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _features(data: common.Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train / val / test features as the frozen strategy extracts them (64 px, ``auto`` precision)."""
    from shoulders.data import ImageDataset, create_transforms, make_loader, resolve_data_config
    from shoulders.models import create_backbone
    from shoulders.train import extract_features, resolve_precision

    cpu = torch.device("cpu")
    backbone, _ = create_backbone("tf_efficientnet_lite0")
    backbone.eval().to(memory_format=torch.channels_last)
    _, eval_tf = create_transforms(resolve_data_config(backbone, common.IMAGE_SIZE))
    precision = resolve_precision("auto", cpu, fixed_features=True)
    splits = data.splits()
    out = {}
    for part in ("train", "val", "test"):
        loader = make_loader(ImageDataset(getattr(splits, part), eval_tf), 256, shuffle=False, device=cpu)
        out[part] = extract_features(backbone, loader, cpu, precision=precision, channels_last=True, progress=False)
    return out


def _solve(fn: Any, feats: dict[str, tuple[np.ndarray, np.ndarray]], num_classes: int, seed: int) -> dict[str, Any]:
    head = torch.nn.Linear(feats["train"][0].shape[1], num_classes)
    start = time.perf_counter()
    rows = fn(head, *feats["train"], *feats["val"], num_classes, seed=seed)
    seconds = time.perf_counter() - start
    chosen = next((r for r in rows if r.get("chosen")), None) or max(
        rows, key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    with torch.no_grad():
        test_x, test_y = feats["test"]
        test_acc = float((head(torch.from_numpy(test_x)).argmax(1).numpy() == test_y).mean())
    return {"val_accuracy": chosen["val_accuracy"], "test_accuracy": test_acc, "C": chosen["C"],
            "seconds": seconds, "fits": len(rows)}


def _pct2(values: list[float]) -> str:
    """Mean (± sample std over seeds) in percent with two decimals: the 0.2-point comparison needs them."""
    s = common.summary(values)
    return f"{100 * s['mean']:.2f}" + (f" ± {100 * s['std']:.2f}" if s["n"] > 1 else "")


def render(payload: dict[str, Any]) -> str:
    out = []
    for (dataset, solver), rows in common.group_rows(payload["rows"], "dataset", "solver").items():
        out.append({"dataset": dataset, "solver": solver, "seeds": len(rows),
                    "val": _pct2([r["val_accuracy"] for r in rows]),
                    "test": _pct2([r["test_accuracy"] for r in rows]),
                    "C": ", ".join(f"{r['C']:.3g}" for r in rows),
                    "seconds": f"{np.median([r['seconds'] for r in rows]):.2f}"})
    cols = [("dataset", "data"), ("solver", "solver"), ("seeds", "seeds"), ("val", "val %"), ("test", "test %"),
            ("C", "chosen C per seed"), ("seconds", "solver s (median)")]
    return common.table(out, cols)
