"""The frozen head's cost at scale: the C search's subsample size and the refit's tolerance, on the same features.

Fashion-MNIST's 60 000 training images + 1 000 official test images as validation (the split of
``benchmarks/startup.py``'s 60 000-image fit), 64 px features of ``tf_efficientnet_lite0`` extracted once (as the
head-solver benchmark extracts them) and kept in ``.bench/head_refit_features.npz``; then
``shoulders.train.head_solver.fit_linear_head`` with each variant of its module constants::

    flock /tmp/shoulders-heavy.lock python benchmarks/head_refit.py SEARCH_IMAGES=10000,REFIT_TOL=1e-6 \\
        SEARCH_IMAGES=5000,REFIT_TOL=3e-4

Prints one JSON line per variant: wall and CPU seconds, the chosen C, val and test accuracy, and every fit.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402


def features() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    path = common.BENCH_DIR / "head_refit_features.npz"
    if not path.is_file():
        from benchmarks.head_solver import _features

        data = common.dataset("fashion-full", 0)
        data.train_x = np.concatenate([data.train_x, data.val_x])
        data.train_y = np.concatenate([data.train_y, data.val_y])
        keep = np.arange(0, len(data.test_y), 10)[:1000]
        data.val_x, data.val_y = data.test_x[keep], data.test_y[keep]
        found = _features(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{f"{k}_{i}": v[i] for k, v in found.items() for i in (0, 1)})
    stored = np.load(path)
    return {k: (stored[f"{k}_0"], stored[f"{k}_1"]) for k in ("train", "val", "test")}


def main(argv: list[str]) -> int:
    import torch

    from shoulders.train import head_solver

    feats = features()
    for variant in argv or ["default"]:
        importlib.reload(head_solver)
        for setting in (s for s in variant.split(",") if "=" in s):
            name, value = setting.split("=")
            setattr(head_solver, name, type(getattr(head_solver, name))(float(value)))
        head = torch.nn.Linear(feats["train"][0].shape[1], 10)
        wall, cpu = time.perf_counter(), time.process_time()
        rows = head_solver.fit_linear_head(head, *feats["train"], *feats["val"], 10, seed=0)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        with torch.no_grad():
            test = float((head(torch.from_numpy(feats["test"][0])).argmax(1).numpy() == feats["test"][1]).mean())
        chosen = next(r for r in rows if r.get("chosen"))
        print(json.dumps({"variant": variant, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "C": chosen["C"],
                          "val_accuracy": chosen["val_accuracy"], "test_accuracy": test,
                          "fits": [(r["C"], int(r["train_images"]), round(r["seconds"], 2), int(r["evaluations"]))
                                   for r in rows]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
