"""Benchmark — class imbalance: a long-tailed Fashion-MNIST, trained with and without class-balanced weights.

Training pool: class ``c`` of Fashion-MNIST keeps ``round(500 × (20/500)^(c/9))`` images (500, 350, 245, 171,
120, 84, 59, 41, 29, 20 — a 25× imbalance), drawn with the seed, split 80/20 into train / validation (stratified,
so validation is long-tailed too). Test: the official, balanced 10 000 images. Each strategy is trained with
``class_weight="none"`` and ``"balanced"`` (what ``"auto"`` picks here, the ratio being ≥ 3) and scored by
accuracy, balanced accuracy (mean per-class recall) and macro-F1 on the test set. 64 px; the frozen strategy's
head is fitted by L-BFGS, ``full`` trains the common batch for ``FULL_EPOCHS`` epochs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import common

HEAD, TAIL, CLASSES = 500, 20, 10
FULL_EPOCHS = 3  # a short fine-tune: the comparison is with vs without weights, not the best accuracy
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"strategies": ["frozen"], "seeds": [0]},
    "full": {"strategies": ["frozen", "full"], "seeds": [0, 1, 2]},
}


def long_tail_counts() -> list[int]:
    return [round(HEAD * (TAIL / HEAD) ** (c / (CLASSES - 1))) for c in range(CLASSES)]


def long_tailed(seed: int) -> common.Dataset:
    """The long-tailed pool (held out 80/20) and the official test set."""
    from shoulders.data import load_fashion_mnist

    x, y, classes = load_fashion_mnist("train", per_class=HEAD, seed=seed)
    rng = np.random.default_rng(seed)
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), n, replace=False)
                                   for c, n in enumerate(long_tail_counts())]))
    test_x, test_y, _ = load_fashion_mnist("test")
    train_x, train_y, val_x, val_y = common._hold_out(x[keep], y[keep], 0.2, seed)
    return common.Dataset("fashion-longtail", list(classes), train_x, train_y, val_x, val_y, test_x, test_y,
                          f"Fashion-MNIST long-tailed {long_tail_counts()} per class (seeded), official 10k test")


def _one(data: common.Dataset, strategy: str, weighting: str, seed: int) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    from shoulders import RunConfig, TransferClassifier

    config = RunConfig()
    config.train.class_weight = weighting
    config.train.feature_cache = True  # the official test set's features are shared by every frozen run
    epochs = FULL_EPOCHS if strategy != "frozen" else None
    clf = TransferClassifier(strategy=strategy, epochs=epochs, image_size=common.IMAGE_SIZE, seed=seed,
                             progress=False, batch_size=common.BATCH_SIZE, config=config)
    splits = data.splits()
    _, seconds = common.timed(lambda: clf.fit(splits))
    predicted = clf.predict_proba(splits.test).argmax(1)
    return {"strategy": strategy, "class_weight": weighting, "seed": seed, "seconds": seconds,
            "resolved": clf.config_.train.class_weight, "test_accuracy": accuracy_score(data.test_y, predicted),
            "balanced_accuracy": balanced_accuracy_score(data.test_y, predicted),
            "macro_f1": f1_score(data.test_y, predicted, average="macro"),
            "train_images": len(data.train_y), "val_images": len(data.val_y)}


def _table(rows: list[dict[str, Any]]) -> str:
    lines = []
    for (strategy, weighting), group in common.group_rows(rows, "strategy", "class_weight").items():
        lines.append({"strategy": strategy, "class_weight": weighting, "seeds": len(group),
                      "acc": common.mean_std([r["test_accuracy"] for r in group]),
                      "bal": common.mean_std([r["balanced_accuracy"] for r in group]),
                      "f1": common.mean_std([r["macro_f1"] for r in group]),
                      "s": f"{np.mean([r['seconds'] for r in group]):.0f}"})
    return common.table(lines, [("strategy", "strategy"), ("class_weight", "class weight"), ("seeds", "seeds"),
                                ("acc", "test accuracy %"), ("bal", "balanced accuracy %"), ("f1", "macro-F1 %"),
                                ("s", "s / run")])


def run(profile: str, strategies: list[str] | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    """Strategy by strategy, seed by seed; the JSON is rewritten after every row, so a cut-short run keeps its
    finished rows."""
    settings = PROFILES[profile]
    rows: list[dict[str, Any]] = []
    payload: dict[str, Any] = {}
    for strategy in strategies or settings["strategies"]:
        for seed in seeds or settings["seeds"]:
            data = long_tailed(seed)
            for weighting in ("none", "balanced"):
                row = _one(data, strategy, weighting, seed)
                print(f"  {strategy:<7} {weighting:<9} seed {seed}: acc {row['test_accuracy']:.4f} "
                      f"bal {row['balanced_accuracy']:.4f} f1 {row['macro_f1']:.4f} ({row['seconds']:.0f} s)",
                      flush=True)
                rows.append(row)
                payload = {"rows": rows, "counts": long_tail_counts(), "table": _table(rows),
                           "note": long_tailed.__doc__}
                common.write_result("imbalance", profile, payload)
    return payload
