"""Brute force vs. the advisor: every strategy (× depths, ± augmentation) on real data, and where the plan lands.

For each dataset it trains every candidate configuration at one common budget, reports test accuracy and wall
time, then runs ``shoulders.advise`` on the same training data and trains what the plan says at the same budget
(epochs and image size are the budget's, everything else is the plan's). Results go to
``benchmarks/results/advisor_oracle_<dataset>.json``; ``--table`` prints the combined table from those files.

Run heavy jobs under the shared lock (2-core machine)::

    flock /tmp/shoulders-heavy.lock .venv/bin/python benchmarks/advisor_oracle.py --datasets fashion100 digits photos
    flock /tmp/shoulders-heavy.lock .venv/bin/python benchmarks/advisor_oracle.py --datasets fashion6000
    .venv/bin/python benchmarks/advisor_oracle.py --table
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sklearn.model_selection import train_test_split

from shoulders import TransferClassifier
from shoulders.data import DataSplits, load_data, load_digits_arrays, load_fashion_mnist, samples_from_arrays

RESULTS = Path(__file__).resolve().parent / "results"
# Natural photographs of scikit-image that load offline; one class each. Crops of 20-50 % of the shorter side make
# the task harder than shoulders.data.load_photos_arrays' 35-80 % (which every strategy solves at 100 %).
PHOTO_NAMES = ("astronaut", "camera", "chelsea", "coffee", "rocket", "stereo_motorcycle", "clock", "coins")
# Scientific images ("cancer cells: different"): microscopy, a retina scan, deep space, the moon.
SCIENCE_NAMES = ("immunohistochemistry", "retina", "hubble_deep_field", "cell", "moon", "microaneurysms")


@dataclass(frozen=True)
class Budget:
    """The common training budget every configuration of a dataset gets."""

    image_size: int
    epochs: int
    seed: int = 0


@dataclass(frozen=True)
class Candidate:
    """One brute-force configuration."""

    strategy: str
    blocks: int | None = None  # partial only
    augment: str = "none"

    @property
    def label(self) -> str:
        depth = f"-{self.blocks}" if self.blocks else ""
        return f"{self.strategy}{depth}{'+' + self.augment if self.augment != 'none' else ''}"


SMALL_GRID = [Candidate("frozen"), Candidate("frozen", augment="light"),
              *(Candidate("partial", b) for b in (1, 2, 4)), Candidate("partial", 4, "light"),
              Candidate("full"), Candidate("full", augment="light")]
# 48 000 training images: a reduced grid (each configuration costs 5-10 minutes here): no augmentation, which needs
# more than 2 epochs to pay off, and one partial depth.
LARGE_GRID = [Candidate("frozen"), Candidate("partial", 2), Candidate("full")]


def _crops(names: tuple[str, ...], per_class: int, size: int, scale: tuple[float, float],
           seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    import skimage.data

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, name in enumerate(names):
        photo = getattr(skimage.data, name)()
        photo = np.asarray(photo[0] if isinstance(photo, tuple) else photo)
        image = Image.fromarray(photo[..., :3] if photo.ndim == 3 else photo).convert("RGB")
        short = min(image.size)
        for _ in range(per_class):
            side = int(rng.uniform(*scale) * short)
            left, top = int(rng.integers(0, image.width - side + 1)), int(rng.integers(0, image.height - side + 1))
            crop = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
            images.append(np.asarray(crop))
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64), list(names)


def dataset(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str], Budget, list[Candidate]]:
    """(train X, train y, test X, test y, classes, budget, grid) for a benchmark dataset."""
    if name in ("fashion100", "fashion6000"):
        per_class = 100 if name == "fashion100" else None
        x, y, classes = load_fashion_mnist("train", per_class=per_class, seed=0)
        xt, yt, _ = load_fashion_mnist("test")
        if per_class:
            return x, y, xt, yt, classes, Budget(64, 10), SMALL_GRID
        return x, y, xt, yt, classes, Budget(40, 2), LARGE_GRID
    if name == "digits":
        x, y, classes = load_digits_arrays()
        x, xt, y, yt = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
        return x, y, xt, yt, classes, Budget(64, 10), SMALL_GRID
    if name in ("photos", "science"):
        names = PHOTO_NAMES if name == "photos" else SCIENCE_NAMES
        x, y, classes = _crops(names, 60, 64, (0.2, 0.5), seed=1)
        xt, yt, _ = _crops(names, 40, 64, (0.2, 0.5), seed=2)  # other crops of the same photographs
        return x, y, xt, yt, classes, Budget(64, 10), SMALL_GRID
    raise ValueError(f"unknown dataset {name!r}; choose fashion100, fashion6000, digits, photos, science")


def splits_with_test(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray, seed: int) -> DataSplits:
    splits = load_data(x, y, val_fraction=0.2, seed=seed)
    splits.test, _ = samples_from_arrays(xt, yt)
    return splits


def train(splits: DataSplits, budget: Budget, candidate: Candidate | None) -> dict[str, Any]:
    """Test accuracy and wall time of one configuration (``None``: strategy auto, i.e. the advisor's plan)."""
    kwargs: dict[str, Any] = {"strategy": "auto"} if candidate is None else {
        "strategy": candidate.strategy, "augment": candidate.augment, "trainable_blocks": candidate.blocks}
    start = time.perf_counter()
    clf = TransferClassifier(image_size=budget.image_size, epochs=budget.epochs, seed=budget.seed, progress=False,
                             **kwargs).fit(splits)
    row = {"test_accuracy": clf.metrics_["test_accuracy"], "val_accuracy": clf.metrics_["val_accuracy"],
           "seconds": round(time.perf_counter() - start, 1)}
    if candidate is None:
        row["plan"] = clf.plan_.to_dict()
    return row


def plan_label(plan: dict[str, Any]) -> str:
    blocks = plan.get("trainable_blocks") if plan["strategy"] == "partial" else None
    label = Candidate(plan["strategy"], int(blocks) if blocks else None, plan["augment"]).label
    # grid candidates train their blocks at the explicit strategies' 0.1x rate; a plan at another rate is another
    # configuration and must be trained, not looked up
    mult = plan.get("backbone_lr_mult", 0.1)
    return label if plan["strategy"] == "frozen" or mult == 0.1 else f"{label}@{mult:g}x"


def run_dataset(name: str, grid_only: bool, advise_only: bool) -> dict[str, Any]:
    x, y, xt, yt, classes, budget, grid = dataset(name)
    path = RESULTS / f"advisor_oracle_{name}.json"
    result = json.loads(path.read_text()) if path.exists() else {"dataset": name, "grid": {}}
    result.update(budget=vars(budget), train_images=len(x), test_images=len(xt), classes=len(classes))
    splits = splits_with_test(x, y, xt, yt, budget.seed)
    if not advise_only:
        for candidate in grid:
            if candidate.label in result["grid"]:
                continue
            result["grid"][candidate.label] = train(splits, budget, candidate)
            print(f"{name:<12} {candidate.label:<18} {result['grid'][candidate.label]}", flush=True)
            _write(path, result)
    if not grid_only:
        from shoulders.advisor import advise  # imported late: the brute force alone does not need it

        advice = advise(splits, image_size=budget.image_size, seed=budget.seed, progress=False)
        result["advice"] = advice.to_dict()
        label = plan_label(advice.plan.to_dict())
        # Training is deterministic on the CPU, so a plan that is a grid configuration reuses its result.
        result["plan"] = {"label": label, **(result["grid"].get(label) or train(splits, budget, None))}
        print(advice.report(), flush=True)
        _write(path, result)
    return result


def _write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")


def table(names: list[str]) -> str:
    """The Markdown table of every dataset that has results."""
    lines = ["| dataset | budget | similarity | quadrant | plan | plan acc | best brute force | gap | "
             "advise s | plan s | brute force s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        path = RESULTS / f"advisor_oracle_{name}.json"
        if not path.exists():
            continue
        r = json.loads(path.read_text())
        if not r["grid"] or "plan" not in r:
            continue
        best_label, best = max(r["grid"].items(), key=lambda kv: kv[1]["test_accuracy"])
        plan, advice = r["plan"], r["advice"]
        budget = r["budget"]
        gap = 100 * (best["test_accuracy"] - plan["test_accuracy"])
        total = sum(v["seconds"] for v in r["grid"].values())
        lines.append(f"| {name} | {budget['image_size']} px, {budget['epochs']} ep | {advice['similarity']:.3f} | "
                     f"Q{advice['quadrant']} | {plan['label']} | {100 * plan['test_accuracy']:.1f} | "
                     f"{best_label} {100 * best['test_accuracy']:.1f} | {gap:.1f} | {advice['seconds']:.1f} | "
                     f"{plan['seconds']:.0f} | {total:.0f} |")
    return "\n".join(lines)


def grid_table(names: list[str]) -> str:
    """Every configuration's test accuracy (and seconds) per dataset."""
    out = []
    for name in names:
        path = RESULTS / f"advisor_oracle_{name}.json"
        if path.exists():
            r = json.loads(path.read_text())
            cells = ", ".join(f"{k} {100 * v['test_accuracy']:.1f} ({v['seconds']:.0f} s)"
                              for k, v in r["grid"].items())
            out.append(f"- **{name}**: {cells}")
    return "\n".join(out)


# Extra sets for the similarity threshold only (no training): more natural and more unnatural images.
CALIBRATION_SETS = {
    "photos224": (PHOTO_NAMES, (0.35, 0.8), 224),  # the same photographs at full resolution: ImageNet-like
    "textures": (("brick", "grass", "gravel"), (0.2, 0.5), 64),  # grey natural textures
    "synthetic": (("checkerboard", "binary_blobs", "text", "page", "horse", "logo"), (0.2, 0.6), 64),
}


def similarity_table(seeds: tuple[int, ...] = (0, 1, 2)) -> str:
    """Similarity and the other figures of every dataset at the benchmark's training size, over sample seeds."""
    from shoulders.advisor import advise

    rows = ["| dataset | similarity (seeds 0/1/2) | ImageNet confidence | LogME | linear probe | quadrant |",
            "|---|---|---|---|---|---|"]
    names = ["photos", "photos224", "science", "textures", "synthetic", "fashion100", "digits", "fashion6000"]
    for name in names:
        if name in CALIBRATION_SETS:
            photos, scale, size = CALIBRATION_SETS[name]
            x, y, _ = _crops(photos, 60, size, scale, seed=1)
            image_size = 64
        else:
            x, y, *_, budget, _ = dataset(name)
            image_size = budget.image_size
        advices = [advise(x, y, image_size=image_size, seed=seed, progress=False) for seed in seeds]
        m = advices[0].measurements
        sims = "/".join(f"{a.similarity:.3f}" for a in advices)
        rows.append(f"| {name} | {sims} | {m['imagenet_confidence'].value:.3f} | {m['logme'].value:.3f} | "
                    f"{m['linear_probe'].value:.3f} | {'/'.join(f'Q{a.quadrant}' for a in advices)} |")
        print(rows[-1], flush=True)
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    all_names = ["fashion100", "digits", "photos", "science", "fashion6000"]
    parser.add_argument("--datasets", nargs="+", default=all_names[:3], choices=all_names)
    parser.add_argument("--grid-only", action="store_true", help="brute force only, no advisor")
    parser.add_argument("--advise-only", action="store_true", help="advisor and plan only (grid results reused)")
    parser.add_argument("--table", action="store_true", help="print the tables from the saved results and stop")
    parser.add_argument("--similarity", action="store_true", help="the similarity figures of every set, 3 seeds")
    args = parser.parse_args()
    if args.similarity:
        print(similarity_table())
        return
    if args.table:
        print(table(all_names) + "\n\n" + grid_table(all_names))
        return
    os.environ.setdefault("SHOULDERS_NO_REEXEC", "1")
    for name in args.datasets:
        run_dataset(name, args.grid_only, args.advise_only)


if __name__ == "__main__":
    main()
