"""Which epoch's weights to keep: the test accuracy of every epoch of a fine-tune, and what each selection rule on
the validation split would have kept.

A run keeps the weights of one epoch, chosen on validation. On small data the validation split is small (20
images for Fashion-MNIST 10/class, 200 for 100/class), so many epochs tie on accuracy and the choice among them
is noise. This benchmark trains fixed recipes (partial top-4, 64 px, blocks at 1.0×, light augmentation: auto's
small-data recipe) and, after every epoch, also measures the test accuracy (official Fashion-MNIST test images,
a seeded subset; digits' held-out 20 %), then applies each rule to the validation history::

    flock /tmp/shoulders-heavy.lock python benchmarks/checkpoint_rule.py --runs fashion-10:60 fashion-100:40 \
        digits:20 --seeds 0 1

Rules: ``ties-lower-loss`` (the best validation accuracy, ties to the lower loss: shoulders before this
benchmark), ``ties-later`` (ties to the later epoch), ``last`` (the schedule's end), ``within-K-se`` (the latest
epoch within K binomial standard errors of the best validation accuracy so far; shoulders keeps K =
``shoulders.train.state.KEEP_WITHIN_SE``). Rows (with every epoch's validation and test accuracy) go to
``results/checkpoint_rule.json``; ``--table`` applies the rules to them again.
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

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

RESULT = common.RESULTS_DIR / "checkpoint_rule.json"
TEST_IMAGES = 2000  # Fashion-MNIST: a seeded subset of the official test set, measured after every epoch

Epoch = dict[str, float]  # epoch, val_accuracy, val_loss, val_images, test_accuracy


def _ties_lower_loss(rows: list[Epoch]) -> Epoch:
    return max(rows, key=lambda r: (r["val_accuracy"], -r["val_loss"]))


def _ties_later(rows: list[Epoch]) -> Epoch:
    return max(rows, key=lambda r: (r["val_accuracy"], r["epoch"]))


def _last(rows: list[Epoch]) -> Epoch:
    return rows[-1]


def _within(k: float) -> Callable[[list[Epoch]], Epoch]:
    """The latest epoch within ``k`` standard errors of the best so far (shoulders' rule at its KEEP_WITHIN_SE)."""
    from shoulders.train import state

    def pick(rows: list[Epoch]) -> Epoch:
        kept, top = rows[0], -1.0
        for r in rows:
            top = max(top, r["val_accuracy"])
            if r["val_accuracy"] >= top - state.keep_tolerance(top, r["val_images"], k):
                kept = r
        return kept
    return pick


def rules() -> dict[str, Callable[[list[Epoch]], Epoch]]:
    from shoulders.train.state import KEEP_WITHIN_SE

    return {"ties-lower-loss": _ties_lower_loss, "ties-later": _ties_later, "last": _last, "within-1-se": _within(1),
            f"within-{KEEP_WITHIN_SE:g}-se (shoulders)": _within(KEEP_WITHIN_SE)}


def run_one(name: str, epochs: int, seed: int) -> dict[str, Any]:
    """One fixed fine-tune with the test accuracy measured after every epoch (benchmark-only hooks)."""
    import torch

    from shoulders import RunConfig, TransferClassifier
    from shoulders.train import state as state_module
    from shoulders.train import trainer as trainer_module

    data = common.dataset(name, seed)
    test_x, test_y = data.test_x, np.asarray(data.test_y)
    if len(test_y) > TEST_IMAGES:
        keep = np.random.default_rng(seed).choice(len(test_y), TEST_IMAGES, replace=False)
        test_x, test_y = test_x[keep], test_y[keep]
    captured: dict[str, Any] = {}
    per_epoch: list[Epoch] = []
    create_transforms, keep_if_best = trainer_module.create_transforms, state_module.keep_if_best

    def capture(*args: Any, **kwargs: Any) -> Any:
        train_tf, eval_tf = create_transforms(*args, **kwargs)
        captured["eval"] = eval_tf
        return train_tf, eval_tf

    def measured(state: Any, epoch: int, val: dict[str, float], model: Any) -> None:
        if "x" not in captured:  # the test images as the run's evaluation transform gives them to the model
            from shoulders.inference import as_samples

            samples = as_samples(test_x)
            captured["x"] = torch.stack([captured["eval"](samples.load(i)) for i in range(len(samples))])
        modes = [m.training for m in model.modules()]
        model.eval()
        device = next(model.parameters()).device
        with torch.inference_mode():
            preds = torch.cat([model(b.to(device)).argmax(1).cpu() for b in captured["x"].split(256)])
        for m, mode in zip(model.modules(), modes):
            m.train(mode)
        per_epoch.append({"epoch": epoch, "val_accuracy": val["accuracy"], "val_loss": val["loss"],
                          "val_images": val.get("images") or len(data.val_y),
                          "test_accuracy": float((preds.numpy() == test_y).mean())})
        keep_if_best(state, epoch, val, model)

    trainer_module.create_transforms, state_module.keep_if_best = capture, measured
    try:
        config = RunConfig()
        config.train.backbone_lr_mult = 1.0
        clf = TransferClassifier(strategy="partial", trainable_blocks=4, image_size=64, epochs=epochs,
                                 augment="light", seed=seed, progress=False, batch_size=common.BATCH_SIZE,
                                 config=config)
        _, seconds = common.timed(lambda: clf.fit(data.splits()))
    finally:
        trainer_module.create_transforms, state_module.keep_if_best = create_transforms, keep_if_best
    return {"dataset": name, "epochs": epochs, "seed": seed, "seconds": round(seconds, 1),
            "test_images": int(len(test_y)), "val_images": per_epoch[0]["val_images"],
            "kept_by_shoulders": clf.metrics_.get("best_epoch"),
            "best_test": max(r["test_accuracy"] for r in per_epoch), "per_epoch": per_epoch}


def table(rows: list[dict[str, Any]]) -> str:
    """Each rule applied to each run's validation history, with the test accuracy of the epoch it keeps."""
    out, picks = [], {rule: [] for rule in rules()}
    for r in rows:
        cells = {}
        for rule, pick in rules().items():
            kept = pick(r["per_epoch"])
            picks[rule].append(kept["test_accuracy"])
            cells[rule] = f"{100 * kept['test_accuracy']:.2f} (ep {kept['epoch']})"
        out.append({"data": r["dataset"], "epochs": r["epochs"], "seed": r["seed"], "val": r["val_images"],
                    **cells, "best": f"{100 * r['best_test']:.2f}"})
    cols = [("data", "data"), ("epochs", "epochs"), ("seed", "seed"), ("val", "val images")]
    cols += [(rule, rule) for rule in rules()] + [("best", "best epoch's test %")]
    means = ", ".join(f"{rule} {100 * np.mean(v):.2f}" for rule, v in picks.items())
    return common.table(out, cols) + f"\nmean test %: {means}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", default=["fashion-10:60", "fashion-100:40", "digits:20"],
                   help="DATASET:EPOCHS")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--table", action="store_true", help="print the saved rows; run nothing")
    args = p.parse_args(argv)
    rows = json.loads(RESULT.read_text())["rows"] if RESULT.is_file() else []
    if not args.table:
        if os.environ.get("GLIBC_TUNABLES") != common.GLIBC_TUNABLES:
            os.execve(sys.executable, [sys.executable, *sys.argv], common.python_env())
        for spec in args.runs:
            name, epochs = spec.split(":")
            for seed in args.seeds:
                started = time.strftime("%H:%M:%S")
                row = {**run_one(name, int(epochs), seed), "started": started}
                rows = [r for r in rows if (r["dataset"], r["epochs"], r["seed"]) != (name, int(epochs), seed)]
                rows.append(row)
                RESULT.write_text(json.dumps({"benchmark": "checkpoint_rule", "machine": common.machine(),
                                              "rows": rows}, indent=1) + "\n")
                print(json.dumps({k: v for k, v in row.items() if k != "per_epoch"}), flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
