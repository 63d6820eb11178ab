"""A training plan: the strategy and the hyper-parameters that go with it, each with its reason.

The advisor produces one from measurements; an explicit ``--strategy`` gets the strategy's defaults. Either way
the plan fills only what the user left unset (``None``): an explicit flag always wins.
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
    """A copy of ``config`` with every unset (``None``) field that ``plan`` covers filled from it."""
    out = copy.deepcopy(config)
    if out.strategy.name == "auto":
        out.strategy.name = plan.strategy
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
    return out
