"""``advise``: measure a dataset against a pretrained backbone, place it in the size-similarity matrix, and plan.

The recommendation is a value (:class:`Advice`): the size figures, every measurement with the threshold it was
compared with, the quadrant, the :class:`~shoulders.advisor.plan.Plan` the trainer follows, the reasons in plain
sentences and, with several candidate backbones, their ranking.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch import nn

from ..config import DEFAULT_BACKBONE
from ..data import DataSplits, Samples, load_data, resolve_data_config
from ..models import WeightsUnavailableError, create_backbone, resolve_backbone_name
from ..strategies import STRATEGIES
from ..train import resolve_device
from .matrix import matrix_text, save_matrix_png
from .measure import DEFAULT_SAMPLE_SIZE, SampleMeasurement, distances_by_block, measure_sample
from .plan import Plan, place, plan_for_quadrant
from .rules import CONFIDENCE_THRESHOLD, SIMILARITY_THRESHOLD, SizeFigures, choose_depth, similarity_from_statistics
from .ranking import RANKING_SCORE, BackboneScore, rank_backbones
from .scores import compute_scores, linear_probe_accuracy

@dataclass
class Measurement:
    """One measured number: what it is, its value, and the threshold it was compared with (if it decided)."""

    name: str
    value: float
    threshold: float | None = None
    meaning: str = ""


@dataclass
class Advice:
    """The advisor's recommendation for one dataset and backbone.

    Attributes:
        backbone: the backbone the plan is for (the recommended one when several were ranked).
        quadrant: 1-4 in the size-similarity matrix (see ``shoulders.advisor.plan``).
        similarity: the measured similarity to the pretraining data (higher = more similar).
        similarity_threshold: where "similar" starts.
        similarity_method: what ``similarity`` is (BatchNorm statistics, or the ImageNet head's confidence).
        size: images per class and imbalance.
        measurements: every number measured, by name.
        depth_probe: per coarse block, bottom to top: linear-probe accuracy of its pooled output.
        plan: what to train and how.
        reasons: why, in plain sentences.
        ranking: candidate backbones, best first (only when several were given).
        sample_size: images in the measured sample.
        image_size: training input size the transferability figures were measured at.
        seconds: wall time of the whole advice.
        duplicates: counts of duplicate content across and within the splits (``DuplicateReport.counts``) and
            the one-line summary, when the data was checked.
    """

    backbone: str
    quadrant: int
    similarity: float
    similarity_threshold: float
    similarity_method: str
    size: SizeFigures
    measurements: dict[str, Measurement]
    depth_probe: list[dict[str, Any]]
    plan: Plan
    reasons: list[str]
    ranking: list[BackboneScore] | None = None
    sample_size: int = 0
    image_size: int = 0
    seconds: float = 0.0
    duplicates: dict[str, Any] | None = None

    def add_reason(self, reason: str) -> None:
        """Appends a sentence to the advice's reasons and to its plan's (two lists, never one shared object)."""
        self.reasons.append(reason)
        self.plan.reasons.append(reason)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; ``quadrant`` and ``similarity`` (NaN → None) at the top level."""
        d = asdict(self)
        d["size"] = self.size.to_dict()
        return _finite(d)

    def matrix_text(self) -> str:
        """The 2×2 matrix for the terminal, the placed quadrant marked."""
        return matrix_text(images_per_class=self.size.median_per_class, similarity=self.similarity,
                           similarity_threshold=self.similarity_threshold,
                           large_per_class=self.size.large_per_class, quadrant=self.quadrant)

    def save_matrix(self, path: str | Path, title: str = "") -> Path:
        """Writes the matrix as a PNG with the dataset placed by its measured coordinates."""
        return save_matrix_png(path, images_per_class=self.size.median_per_class, similarity=self.similarity,
                               similarity_threshold=self.similarity_threshold,
                               large_per_class=self.size.large_per_class, quadrant=self.quadrant,
                               title=title or f"{self.backbone}: quadrant {self.quadrant}")

    def report(self) -> str:
        """A readable report: figures, measurements, matrix, plan, reasons, ranking."""
        s, p = self.size, self.plan
        lines = [f"backbone     {self.backbone} ({self.sample_size} images measured at {self.image_size} px, "
                 f"{self.seconds:.1f} s)",
                 f"size         {s.total} images, {s.classes} classes; per class min {s.min_per_class}, median "
                 f"{s.median_per_class:g}, max {s.max_per_class} (imbalance {s.imbalance:g})",
                 f"similarity   {self.similarity:.3f} (threshold {self.similarity_threshold:.2f}; "
                 f"{self.similarity_method})", "measurements"]
        for m in self.measurements.values():
            limit = f"  (threshold {m.threshold:g})" if m.threshold is not None else ""
            lines.append(f"  {m.name:<22} {m.value:>9.4f}{limit}  {m.meaning}")
        if self.depth_probe:
            lines.append(f"per block    {'block':<28} {'probe acc':>9} {'similarity':>10}")
            lines += [f"             {r['block']:<28} {_fmt(r['probe_accuracy']):>9} {_fmt(r['similarity']):>10}"
                      for r in self.depth_probe]
        lines += ["", self.matrix_text(), "",
                  f"plan         {p.strategy}"
                  + (f", top {p.trainable_blocks} blocks" if p.strategy == "partial" else "")
                  + f", augment {p.augment}, lr {p.lr:g}"
                  + (f" (backbone ×{p.backbone_lr_mult:g})" if p.strategy != "frozen" else "")
                  + f", {p.epochs} epochs"
                  + (f" ({p.head_epochs} head-only first)" if p.head_epochs else "")]
        lines += [f"  why: {r}" for r in self.reasons]
        if self.duplicates and self.duplicates.get("summary"):
            lines.append(f"leakage      {self.duplicates['summary']}")
        if self.ranking:
            lines.append(f"ranking by {RANKING_SCORE} (higher transfers better):")
            for i, r in enumerate(self.ranking, 1):
                figure = f"{r.score:9.4f}  probe {r.linear_probe:.3f}  {r.seconds:.1f} s" if r.error is None \
                    else f"skipped: {r.error}"
                lines.append(f"  {i}. {r.backbone:<26} {figure}")
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _finite(obj: Any) -> Any:
    """NaN/inf → None, recursively, so the JSON is standard (no bare NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


# -- measuring --------------------------------------------------------------------------------------------------
@dataclass
class _Measured:
    """The two passes' results for one backbone."""

    native: SampleMeasurement  # at the backbone's pretrained input size: similarity, ImageNet head
    task: SampleMeasurement  # at the training input size: transferability, depth probe
    native_size: int
    task_size: int
    depth_probe: list[dict[str, Any]] = field(default_factory=list)  # per block: probe accuracy, similarity


def _imagenet_classifier(backbone_name: str, weights: str | None) -> nn.Module | None:
    """The pretrained 1000-class head of ``backbone_name``, or None when its weights are not at hand."""
    try:
        model, _ = create_backbone(backbone_name, weights=weights, with_imagenet_head=True)
    except (WeightsUnavailableError, ValueError):
        return None
    head = model.get_classifier()
    return copy.deepcopy(head) if isinstance(head, nn.Module) and not isinstance(head, nn.Identity) else None


def _measure(backbone: nn.Module, classifier: nn.Module | None, pool: Samples, data_config: dict[str, Any], *,
             device: str, sample_size: int, seed: int) -> _Measured:
    """The native-size pass (skipped when the training size is the native one) and the training-size pass."""
    dev = resolve_device(device)
    native_config = resolve_data_config(backbone, None, data_config["crop_pct"])
    task = measure_sample(backbone, pool, data_config, classifier=classifier, device=dev, sample_size=sample_size,
                          seed=seed)
    native = task if native_config["input_size"] == data_config["input_size"] else measure_sample(
        backbone, pool, native_config, classifier=classifier, device=dev, sample_size=sample_size, seed=seed)
    probe = {name: linear_probe_accuracy(f, task.labels, seed=seed) for name, f in task.block_features}
    rows = [{"block": name, "probe_accuracy": round(probe[name], 4) if name in probe else None,
             "similarity": round(similarity_from_statistics(d), 4) if d else None}
            for name, d in distances_by_block(backbone, native.bn_distance)]
    return _Measured(native, task, native_config["input_size"][-1], data_config["input_size"][-1], rows)


def _similarity(m: _Measured) -> tuple[float, float, str, list[Measurement]]:
    """(similarity, threshold, method, measurements) from the native-size pass."""
    out = []
    probs = m.native.source_probs
    if probs is not None:
        entropy = compute_scores(labels=m.native.labels, source_probs=probs)
        out += [Measurement("imagenet_confidence", 1 - entropy["prediction_entropy"],
                            meaning="1 - normalised entropy of the ImageNet head"),
                Measurement("leep", entropy["leep"], meaning="Nguyen et al. 2020; 0 is best"),
                Measurement("nce", entropy["nce"], meaning="Tran et al. 2019; 0 is best")]
    if m.native.bn_distance:
        distances = [d for _, d in m.native.bn_distance]
        distance = float(np.exp(np.mean(np.log(np.maximum(distances, 1e-12)))))
        out.append(Measurement("imagenet_bn_distance", distance, meaning=f"geometric mean over "
                               f"{len(distances)} BatchNorm layers at {m.native_size} px"))
        similarity = similarity_from_statistics(distances)
        method = f"activation statistics vs the BatchNorm layers' ImageNet statistics, at {m.native_size} px"
        threshold = SIMILARITY_THRESHOLD
    elif probs is not None:
        similarity, threshold = out[0].value, CONFIDENCE_THRESHOLD
        method = f"ImageNet head confidence at {m.native_size} px (no BatchNorm statistics: a weaker signal)"
    else:
        similarity, threshold, method = math.nan, SIMILARITY_THRESHOLD, "not measurable (no statistics, no head)"
    out.insert(0, Measurement("similarity", similarity, threshold, "higher = more like the pretraining data"))
    return similarity, threshold, method, out


def _transferability(m: _Measured) -> list[Measurement]:
    """Feature-based scores at the training size: how well the frozen features already separate the classes."""
    scores = compute_scores(labels=m.task.labels, features=m.task.features,
                            names=["logme", "h_score", "gbc", "linear_probe"])
    meaning = {"logme": "You et al. 2021; evidence per sample", "h_score": "Bao et al. 2019, shrinkage-regularised",
               "gbc": "Pándy et al. 2022; 0 is best",
               "linear_probe": f"cross-validated accuracy of a linear head on frozen features at {m.task_size} px"}
    return [Measurement(name, value, meaning=meaning[name]) for name, value in scores.items()]


def _decide(size: SizeFigures, similarity: float, threshold: float, method: str,
            m: _Measured) -> tuple[int, Plan, list[str]]:
    """Quadrant, plan and the reasons, from the measured figures."""
    quadrant = place(size.median_per_class, similarity, threshold, size.large_per_class)
    reasons = [f"{'large' if size.large else 'small'} dataset: median {size.median_per_class:g} images per class "
               f"({'at least' if size.large else 'under'} {size.large_per_class})"]
    if size.imbalance >= 3:
        reasons.append(f"classes are imbalanced ({size.min_per_class} to {size.max_per_class} images): "
                       "watch per-class recall in the report")
    if math.isnan(similarity):
        reasons.append("similarity could not be measured (no BatchNorm statistics, no ImageNet head): "
                       "assumed different, the side that adapts more of the network")
    else:
        side = "similar to" if similarity >= threshold else "different from"
        reasons.append(f"{side} the pretraining data: similarity {similarity:.3f} "
                       f"{'>=' if similarity >= threshold else '<'} {threshold:.2f} ({method})")
    depth = None
    if quadrant in (2, 3):
        depth = _depth(quadrant, m.depth_probe, reasons)
    return quadrant, plan_for_quadrant(quadrant, depth=depth, reasons=reasons), reasons


def _depth(quadrant: int, rows: list[dict[str, Any]], reasons: list[str]) -> int:
    """Strategy 2's depth from the per-block figures (see ``rules.choose_depth``), with its reason appended."""
    accuracies = [r["probe_accuracy"] for r in rows if r["probe_accuracy"] is not None]
    if not accuracies:
        depth = STRATEGIES.get("partial").default_depth
        reasons.append(f"depth {depth} (the partial strategy's default): the backbone's blocks could not be probed")
        return depth
    similarities = [r["similarity"] if r["similarity"] is not None else math.inf for r in rows]
    choice = choose_depth(accuracies, similarities if quadrant == 3 else None)
    if choice.probe_peak < len(accuracies):
        reasons.append(f"a linear probe on each block's output levels off at block {choice.probe_peak} of "
                       f"{len(accuracies)} ({accuracies[choice.probe_peak - 1]:.3f} vs best {max(accuracies):.3f}): "
                       f"the {choice.probe_depth} block(s) above it are specific to ImageNet's classes")
    else:
        reasons.append(f"a linear probe on each block's output improves up to the top block ({accuracies[-1]:.3f}): "
                       "the top features suit this task, only the top block needs to adapt")
    if choice.statistics_depth:
        lowest = len(rows) - choice.statistics_depth
        reasons.append(f"the image statistics depart from ImageNet's from block {lowest + 1} up (its similarity "
                       f"{rows[lowest]['similarity']:.3f} < {SIMILARITY_THRESHOLD:.2f}): "
                       f"the top {choice.statistics_depth} block(s) must adapt")
    reasons.append(f"depth {choice.depth}: the top {choice.depth} of {len(rows)} blocks train")
    return choice.depth


def _advise_measured(backbone_name: str, pool: Samples, m: _Measured, start: float) -> Advice:
    size = SizeFigures.from_labels(pool.labels, len(pool.classes))
    similarity, threshold, method, measurements = _similarity(m)
    measurements += _transferability(m)
    quadrant, plan, reasons = _decide(size, similarity, threshold, method, m)
    return Advice(backbone=backbone_name, quadrant=quadrant, similarity=similarity, similarity_threshold=threshold,
                  similarity_method=method, size=size, measurements={x.name: x for x in measurements},
                  depth_probe=m.depth_probe, plan=plan, reasons=list(plan.reasons), sample_size=len(m.task.labels),
                  image_size=m.task_size, seconds=round(time.perf_counter() - start, 2))


def _pool(splits: DataSplits) -> Samples:
    """Train and validation together: the labelled data the user has (test images are never looked at)."""
    train, val = splits.train, splits.val
    if val is None or len(val) == 0:
        return train
    if train.paths is not None and val.paths is not None:
        return Samples(train.classes, np.concatenate([train.labels, val.labels]), paths=train.paths + val.paths)
    if train.arrays is not None and val.arrays is not None and train.arrays.shape[1:] == val.arrays.shape[1:]:
        return Samples(train.classes, np.concatenate([train.labels, val.labels]),
                       arrays=np.concatenate([train.arrays, val.arrays]))
    return train


# -- public API --------------------------------------------------------------------------------------------------
def advise_splits(splits: DataSplits, backbone_model: nn.Module, data_config: dict[str, Any], *, backbone_name: str,
                  device: str, seed: int, progress: bool, weights: str | None = None, pretrained: bool = True,
                  sample_size: int = DEFAULT_SAMPLE_SIZE) -> Advice:
    """Advice for prepared splits and an already-built backbone (what ``TransferClassifier`` calls).

    Args:
        splits: the data; train and validation images are measured, test images never.
        backbone_model: the timm network without its classifier, pretrained weights loaded.
        data_config: the training preprocessing (its input size is where transferability is measured).
        backbone_name: the backbone's name, to find its ImageNet head.
        device: auto | cpu | cuda.
        seed: which images are sampled.
        progress: accepted for symmetry with training; the passes take seconds and show no bar.
        weights: the weights file the backbone was loaded from, if any (for the ImageNet head).
        pretrained: False (random init) skips the ImageNet head; the figures then describe a random network.
        sample_size: images measured, at most.
    """
    start = time.perf_counter()
    pool = _pool(splits)
    classifier = _imagenet_classifier(backbone_name, weights) if pretrained else None
    measured = _measure(backbone_model, classifier, pool, data_config, device=device, sample_size=sample_size,
                        seed=seed)
    advice = _advise_measured(backbone_name, pool, measured, start)
    if not pretrained:
        advice.add_reason("the backbone is randomly initialised (pretrained=False): its figures say little")
    if splits.duplicates is not None:
        advice.duplicates = {**splits.duplicates.counts, "summary": splits.duplicates.summary()}
    return advice


def advise(data: Any, labels: Sequence[Any] | np.ndarray | None = None, *, backbone: str = DEFAULT_BACKBONE,
           backbones: Sequence[str] | None = None, weights: str | None = None, image_size: int | None = None,
           sample_size: int = DEFAULT_SAMPLE_SIZE, seed: int = 0, device: str = "auto",
           progress: bool = True) -> Advice:
    """Measures ``data`` against a pretrained backbone and recommends how to fine-tune it.

    Cost: one forward pass over at most ``sample_size`` images at the training size, plus one at the backbone's
    pretrained size when that differs (seconds on a CPU); with ``backbones``, one pass per candidate.

    Args:
        data: an image folder, a CSV file, an image array (with ``labels``), ``Samples`` or ``DataSplits``.
        labels: one label per image, for arrays.
        backbone: the backbone to advise for (ignored when ``backbones`` is given).
        backbones: candidates to rank by LogME; the advice is for the best one.
        weights: a weights file for ``backbone``.
        image_size: the training input size (default: the backbone's).
        sample_size: images measured, at most (class-balanced).
        seed: which images are sampled.
        device: auto | cpu | cuda.
        progress: accepted for symmetry with training; the passes take seconds and show no bar.

    Returns:
        The :class:`Advice`: size figures, measurements, quadrant, plan, reasons and, with ``backbones``, ranking.
    """
    start = time.perf_counter()
    splits = data if isinstance(data, DataSplits) else load_data(data, labels, seed=seed)
    pool = _pool(splits)
    ranking = None
    if backbones:
        ranking, built = rank_backbones(pool, list(backbones), image_size=image_size, device=device, seed=seed,
                                        sample_size=sample_size)
        if not built:
            raise ValueError("none of the backbones could be measured: "
                             + "; ".join(f"{r.backbone}: {r.error}" for r in ranking))
        chosen = next(r for r in ranking if r.error is None)
        model, config, _ = built[chosen.requested]
        name, weights = chosen.backbone, None
    else:
        name = resolve_backbone_name(backbone)
        model, _ = create_backbone(name, weights=weights)
        config = resolve_data_config(model, image_size, None)
    advice = advise_splits(splits, model, config, backbone_name=name, device=device, seed=seed, progress=progress,
                           weights=weights, sample_size=sample_size)
    if ranking:
        advice.ranking = ranking
        advice.add_reason(f"{name} recommended: the highest {RANKING_SCORE} of {len(ranking)} candidates")
    advice.seconds = round(time.perf_counter() - start, 2)
    return advice
