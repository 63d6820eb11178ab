"""Fine-tuning strategies: a registry of ``full``, ``partial`` and ``frozen`` (see ``base.Strategy``)."""

from __future__ import annotations

from .._registry import Registry
from ..config import StrategyConfig
from .base import ALL_BLOCKS, Phase, Strategy, resolve_block_count, trainable_block_list
from .frozen import FrozenStrategy
from .full import FullStrategy
from .partial import PartialStrategy

STRATEGIES: Registry[type[Strategy]] = Registry("strategy", "or 'auto' to let the advisor measure the data and choose")
for _cls in (FullStrategy, PartialStrategy, FrozenStrategy):
    STRATEGIES.register(_cls.name, _cls)


def create_strategy(config: StrategyConfig) -> Strategy:
    """Builds the strategy ``config.name`` names ("auto" must be resolved by the advisor first)."""
    if config.name == "auto":
        raise ValueError("strategy 'auto' must be resolved by the advisor before training (shoulders.advise)")
    return STRATEGIES.get(config.name)(config)


def list_strategies() -> list[str]:
    return STRATEGIES.names()


__all__ = [
    "ALL_BLOCKS", "FrozenStrategy", "FullStrategy", "PartialStrategy", "Phase",
    "STRATEGIES", "Strategy", "create_strategy", "list_strategies", "resolve_block_count",
    "trainable_block_list",
]
