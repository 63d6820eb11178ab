"""Benchmark — test-time augmentation: test accuracy with and without TTA, and what it costs per image.

One model per data set and seed (the plan's own configuration: ``--strategy auto``, 64 px, the common 10-epoch
budget, as in the accuracy benchmark), then the same test images predicted with each view set: plain, the
scale/crop views ``tta=True`` uses when flips are not allowed, and those views plus flips (what ``tta=True``
uses where a run allows flips; measured on digits too, to show why flips stay off there). Time per image is the
wall time of ``predict_proba`` over the whole test set divided by its size (decoding and preprocessing included),
so the ratio to "plain" is what a user pays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import common

VIEW_SETS: dict[str, list[str] | bool] = {
    "plain": False,
    "scale/crop": ["identity", "zoom", "shift-tl", "shift-br"],
    "flips only": ["identity", "hflip"],
    "scale/crop + flips": ["identity", "zoom", "shift-tl", "shift-br", "hflip", "hflip-zoom"],
}
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"datasets": ["digits", "fashion-100", "photos"], "seeds": [0]},
    "full": {"datasets": ["digits", "fashion-100", "fashion-1000", "photos"], "seeds": [0, 1, 2]},
}


def _one(name: str, seed: int) -> list[dict[str, Any]]:
    from shoulders import TransferClassifier

    data = common.dataset(name, seed)
    clf = TransferClassifier(strategy="auto", epochs=common.EPOCHS, image_size=common.IMAGE_SIZE, seed=seed,
                             progress=False, batch_size=common.BATCH_SIZE)
    _, train_seconds = common.timed(lambda: clf.fit(data.splits()))
    chosen = common.chosen_label(clf.config_.strategy.name, clf.config_.strategy.trainable_blocks,
                                 clf.config_.data.augment)
    test = data.splits().test
    rows, plain = [], None
    for label, views in VIEW_SETS.items():
        proba, seconds = common.timed(lambda: clf.predict_proba(test, tta=views))
        predicted = proba.argmax(1)
        correct = predicted == data.test_y
        plain = correct if plain is None else plain
        rows.append({"dataset": name, "seed": seed, "views": label, "chosen": chosen,
                     "n_views": 1 if views is False else len(views), "test_accuracy": float(correct.mean()),
                     "fixed": int((correct & ~plain).sum()), "broken": int((~correct & plain).sum()),
                     "ms_per_image": 1000 * seconds / len(test), "test_images": len(test),
                     "train_seconds": train_seconds})
        print(f"  {name} seed {seed} {label:<20} acc {100 * correct.mean():.2f}  "
              f"{1000 * seconds / len(test):.2f} ms/image", flush=True)
    return rows


def run(profile: str, datasets: list[str] | None = None, seeds: list[int] | None = None,
        methods: list[str] | None = None) -> dict[str, Any]:
    """Rows accumulate in results/tta-<profile>.json per (data set, seed), written after each, so the profile
    can run in pieces (``--datasets photos``); ``methods`` is not used."""
    cfg = PROFILES[profile]
    previous = common.read_result("tta", profile) or {}
    rows = list(previous.get("rows", []))
    for name in datasets or cfg["datasets"]:
        for seed in seeds or cfg["seeds"]:
            rows = [r for r in rows if (r["dataset"], r["seed"]) != (name, seed)] + _one(name, seed)
            payload = {"rows": rows, "summary": summarise(rows)}
            payload["table"] = render(payload)
            common.write_result("tta", profile, payload)
    return payload


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for (name, views), group in common.group_rows(rows, "dataset", "views").items():
        plain = [r for r in rows if r["dataset"] == name and r["views"] == "plain"]
        gain = [r["test_accuracy"] - p["test_accuracy"] for r, p in zip(group, plain)]
        out.append({"dataset": name, "views": views, "n_views": group[0]["n_views"], "chosen": group[0]["chosen"],
                    "accuracy": common.mean_std([r["test_accuracy"] for r in group]),
                    "gain_points": float(100 * np.mean(gain)),
                    "fixed_broken": f"+{sum(r['fixed'] for r in group)} / -{sum(r['broken'] for r in group)}",
                    "ms_per_image": float(np.mean([r["ms_per_image"] for r in group])),
                    "cost": float(np.mean([r["ms_per_image"] for r in group])
                                  / np.mean([p["ms_per_image"] for p in plain])),
                    "seeds": len(group), "test_images": group[0]["test_images"]})
    return out


def render(payload: dict[str, Any]) -> str:
    rows = [{**r, "gain": f"{r['gain_points']:+.2f}", "ms": f"{r['ms_per_image']:.2f}", "x": f"{r['cost']:.1f}x"}
            for r in payload["summary"]]
    return common.table(rows, [("dataset", "dataset"), ("chosen", "plan"), ("views", "views"),
                               ("n_views", "n"), ("accuracy", "test acc %"), ("gain", "gain (points)"),
                               ("fixed_broken", "fixed / broken"), ("ms", "ms / image"), ("x", "cost")])
