"""A training plan: the strategy and the hyper-parameters that go with it, each with its reason.

The advisor produces one from measurements (:func:`plan_for_quadrant`); an explicit ``--strategy`` gets the
strategy's defaults. Either way the plan fills only what the user left unset (``None``): an explicit flag always
wins.

The size-similarity matrix (quadrants numbered as in the seed's figure)::

                      different from ImageNet        similar to ImageNet
    large dataset     Q1: full, pretrained init       Q2: partial, the top blocks
    small dataset     Q3: partial, deeper, augmented  Q4: frozen base + new head
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

from ..config import RunConfig


@dataclass
class Plan:
    """What to train and how; ``reasons`` says why, in plain sentences."""

    strategy: str  # full | partial | frozen
    epochs: int
    lr: float  # the new head's rate; pretrained blocks get lr × backbone_lr_mult
    augment: str = "none"
    trainable_blocks: int | None = None  # partial only
    head_epochs: int = 0  # full/partial: head-only warm-up epochs
    backbone_lr_mult: float = 0.1  # pretrained blocks' rate = lr × this
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Defaults per strategy. Fine-tuning: 10 epochs at head lr 1e-3 (backbone 1e-4) with AdamW, as measured in
# FINDINGS' baselines. The frozen head: 30 cheap epochs on cached features when trained by SGD (the default
# L-BFGS solver ignores epochs and picks its regularisation on validation).
STRATEGY_DEFAULTS: dict[str, dict[str, Any]] = {
    "full": {"epochs": 10, "lr": 1e-3},
    "partial": {"epochs": 10, "lr": 1e-3, "trainable_blocks": 2},
    "frozen": {"epochs": 30, "lr": 1e-3},
}


def default_plan(strategy: str) -> Plan:
    """The plan for an explicitly chosen strategy."""
    if strategy not in STRATEGY_DEFAULTS:
        raise ValueError(f"unknown strategy {strategy!r}; choose auto, {', '.join(STRATEGY_DEFAULTS)}")
    return Plan(strategy=strategy, **STRATEGY_DEFAULTS[strategy], reasons=[f"strategy {strategy!r} chosen by the user"])


def apply_plan(config: RunConfig, plan: Plan) -> RunConfig:
    """A copy of ``config`` with every unset (``None``) field that ``plan`` covers filled from it.

    Explicit settings always win. An explicit ``trainable_blocks`` under strategy ``auto`` selects ``partial``; when
    the strategy that results is not the plan's, the unset fields come from that strategy's defaults instead
    (a frozen plan's 30 head epochs would be wrong for fine-tuning).
    """
    out = copy.deepcopy(config)
    if out.strategy.name == "auto":
        # An explicit depth (--trainable-blocks) only means something for strategy 2, so it picks it.
        out.strategy.name = "partial" if out.strategy.trainable_blocks is not None else plan.strategy
    if out.strategy.name != plan.strategy:  # the plan's numbers belong to its strategy, not to the one chosen
        plan = default_plan(out.strategy.name)
    if out.train.epochs is None:
        out.train.epochs = plan.epochs
    if out.train.lr is None:
        out.train.lr = plan.lr
    if out.data.augment is None:
        out.data.augment = plan.augment
    if out.strategy.trainable_blocks is None and out.strategy.name == "partial":
        out.strategy.trainable_blocks = plan.trainable_blocks
    if out.strategy.head_epochs is None:
        out.strategy.head_epochs = plan.head_epochs
    if out.train.backbone_lr_mult is None:
        out.train.backbone_lr_mult = plan.backbone_lr_mult
    return out


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


QUADRANTS: dict[int, Quadrant] = {q.number: q for q in (
    Quadrant(1, True, False, "full", "none", "large and different: train all layers from the pretrained init", 1.0),
    Quadrant(2, True, True, "partial", "none", "large and similar: train the top blocks"),
    Quadrant(3, False, False, "partial", "light", "small and different: train deeper blocks, with augmentation", 1.0),
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
    settings = dict(STRATEGY_DEFAULTS[q.strategy], backbone_lr_mult=q.backbone_lr_mult)
    if q.strategy == "partial":
        if depth is None or depth < 1:
            raise ValueError(f"quadrant {quadrant} trains the top blocks: give depth >= 1, got {depth}")
        settings["trainable_blocks"] = int(depth)
    why = list(reasons or []) + [f"quadrant {quadrant} ({q.summary}): strategy {q.strategy!r}"
                                 + (f" with the top {depth} block(s) trainable" if q.strategy == "partial" else "")
                                 + (f", {q.augment} augmentation" if q.augment != "none" else ", no augmentation")
                                 + (f", pretrained blocks at {q.backbone_lr_mult:g}x the head's learning rate"
                                    if q.strategy != "frozen" else "")]
    return Plan(strategy=q.strategy, augment=q.augment, reasons=why, **settings)
