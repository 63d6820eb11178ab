"""A training plan: the strategy and the hyper-parameters that go with it, each with its reason.

The advisor produces one from measurements (:func:`plan_for_quadrant`); an explicitly chosen strategy gets the
strategy's own defaults (:func:`default_plan`, from the strategy classes). Either way the plan fills only what the
user left unset (``None``), in :func:`shoulders.resolution.resolve_config`: an explicit setting always wins, and
the plan recorded in the run folder is the effective one.

The size-similarity matrix (quadrants numbered as in the seed's figure)::

                      different from ImageNet        similar to ImageNet
    large dataset     Q1: full, pretrained init       Q2: partial, the top blocks
    small dataset     Q3: partial, deeper, augmented  Q4: frozen base + new head
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..strategies import STRATEGIES


@dataclass
class Plan:
    """What to train and how; ``reasons`` says why, in plain sentences."""

    strategy: str  # full | partial | frozen
    epochs: int
    lr: float  # the new head's rate; pretrained blocks get lr × backbone_lr_mult
    augment: str = "none"
    trainable_blocks: int | None = None  # top blocks that train (the advisor's plans: partial only)
    head_epochs: int = 0  # full/partial: head-only warm-up epochs
    backbone_lr_mult: float = 0.1  # pretrained blocks' rate = lr × this
    class_weight: str = "none"  # balanced | none: class-balanced loss weights (set by the resolution step)
    reasons: list[str] = field(default_factory=list)
    image_size: int | None = None  # the planner's input size; None = the backbone's
    head_init: str = "default"  # default | probe (LP-FT)
    label_smoothing: float = 0.0  # the fine-tune's cross-entropy label smoothing
    recipe: dict[str, Any] | None = None  # the planner's recipe: predicted seconds by part, alternatives
    tta: dict[str, Any] | None = None  # test-time augmentation by default: on/off, views, reason, measured cost
    max_steps: int | None = None  # fine-tuning's optimizer steps where the schedule ends within its last epoch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_plan(strategy: str) -> Plan:
    """The plan for an explicitly chosen strategy: that strategy's own defaults (its class attributes)."""
    if strategy not in STRATEGIES:
        raise ValueError(STRATEGIES.unknown_message(strategy))
    return _strategy_plan(strategy, reasons=[f"strategy={strategy!r} chosen by the user"])


def _strategy_plan(strategy: str, **overrides: Any) -> Plan:
    cls = STRATEGIES.get(strategy)
    settings = {"epochs": cls.default_epochs, "lr": cls.default_lr, "trainable_blocks": cls.default_depth,
                "head_epochs": cls.default_head_epochs, "backbone_lr_mult": cls.default_backbone_lr_mult}
    return Plan(strategy=cls.name, **{**settings, **overrides})


# "Small" is under about 1000 images per class (the seed's rule of thumb): below it, fine-tuning millions of
# weights overfits faster than it adapts.
LARGE_PER_CLASS = 1000


@dataclass(frozen=True)
class Quadrant:
    """One cell of the size-similarity matrix and the strategy it calls for."""

    number: int
    large: bool
    similar: bool
    strategy: str
    augment: str
    summary: str
    backbone_lr_mult: float = 0.1
    label_smoothing: float = 0.0


QUADRANTS: dict[int, Quadrant] = {q.number: q for q in (
    Quadrant(1, True, False, "full", "none", "large and different: train all layers from the pretrained init", 1.0),
    Quadrant(2, True, True, "partial", "none", "large and similar: train the top blocks"),
    Quadrant(3, False, False, "partial", "light", "small and different: train deeper blocks, with augmentation", 1.0,
             0.1),
    Quadrant(4, False, True, "frozen", "light", "small and similar: frozen base, new head"),
)}
# Augmentation per quadrant, as measured (benchmarks/README.md): light augmentation (4 cached augmented views for
# the frozen head) helped the frozen head on photos (+0.3) and Fashion-MNIST (+0.4) and full fine-tuning of small
# data (+0.7 Fashion-MNIST, +0.8 digits). The large quadrants were measured without it (2-epoch budget).
# Learning rate of the pretrained blocks: where the data differs from ImageNet (Q1, Q3) they must move further, so
# they train at the head's rate (AdamW 1e-3, itself a low rate). The quadrant-3 plan went from 82.2 ± 0.4 to
# 84.2 ± 0.5 % on Fashion-MNIST 100/class and from 98.2 ± 0.7 to 99.8 ± 0.2 % on digits (3 seeds, benchmarks/
# README.md "Accuracy"). Similar data keeps 0.1x, so as not to erase features that already fit (not measured
# against 1.0x: the photo set is at its ceiling).
# Label smoothing 0.1 in quadrant 3: +1.0 point over nine paired 2-minute budgeted runs (seeds 0-2 against the same
# plan without it: Fashion-MNIST 10/class +2.9, 100/class +0.0, digits +0.2; never more than 0.15 worse;
# benchmarks/README.md "Label smoothing"). Not measured on large data, so quadrants 1 and 2 keep 0; the frozen head
# (quadrant 4) is a convex fit it does not apply to.


def place(images_per_class: float, similarity: float, similarity_threshold: float,
          large_per_class: int = LARGE_PER_CLASS) -> int:
    """The quadrant (1-4) of a dataset: large when ``images_per_class >= large_per_class``, similar when
    ``similarity >= similarity_threshold`` (both borders belong to the upper side). NaN similarity is "different",
    the side that trains more and so cannot be stuck with unsuitable features."""
    large = images_per_class >= large_per_class
    similar = bool(similarity >= similarity_threshold)  # False for NaN
    return next(q.number for q in QUADRANTS.values() if q.large == large and q.similar == similar)


def plan_for_quadrant(quadrant: int, *, depth: int | None = None, reasons: list[str] | None = None) -> Plan:
    """The plan of a quadrant: its strategy and augmentation, the strategy's defaults, and ``depth`` (the measured
    number of top blocks to train) for the partial quadrants.

    Args:
        quadrant: 1-4, see :data:`QUADRANTS`.
        depth: top blocks to train when the quadrant's strategy is partial; required there.
        reasons: sentences explaining the measurements; the quadrant's own reason is appended.
    """
    if quadrant not in QUADRANTS:
        raise ValueError(f"quadrant must be 1, 2, 3 or 4; got {quadrant}")
    q = QUADRANTS[quadrant]
    settings: dict[str, Any] = {"backbone_lr_mult": q.backbone_lr_mult, "label_smoothing": q.label_smoothing}
    if q.strategy == "partial":
        if depth is None or depth < 1:
            raise ValueError(f"quadrant {quadrant} trains the top blocks: give depth >= 1, got {depth}")
        settings["trainable_blocks"] = int(depth)
    why = list(reasons or []) + [f"quadrant {quadrant} ({q.summary}): strategy {q.strategy!r}"
                                 + (f" with the top {depth} block(s) trainable" if q.strategy == "partial" else "")
                                 + (f", {q.augment} augmentation" if q.augment != "none" else ", no augmentation")
                                 + (f", pretrained blocks at {q.backbone_lr_mult:g}x the head's learning rate"
                                    if q.strategy != "frozen" else "")
                                 + (f", label smoothing {q.label_smoothing:g}" if q.label_smoothing else "")]
    return _strategy_plan(q.strategy, augment=q.augment, reasons=why, **settings)
