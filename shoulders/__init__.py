"""shoulders: transfer learning for image classification — stand on the shoulders of giants.

Start from a network pretrained on ImageNet, replace its classifier with one for your classes, and fine-tune it
with the strategy that the size of your dataset and its similarity to ImageNet call for.

The public names are imported on first use (PEP 562, through scientific-python's ``lazy_loader``), so
``import shoulders`` and ``shoulders --version`` cost milliseconds instead of the seconds that torch, timm and
scikit-learn take; ``from shoulders import TransferClassifier`` works as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

__version__ = "0.1.0"

__getattr__, _dir, _names = lazy_loader.attach(__name__, submod_attrs={
    "advisor": ["Advice", "advise"],
    "classifier": ["TransferClassifier"],
    "config": ["DEFAULT_BACKBONE", "DataConfig", "ModelConfig", "RunConfig", "StrategyConfig", "TrainConfig"],
    "data": ["DataSplits", "Samples", "load_data"],
    "models": ["create_backbone", "create_transfer_model", "list_backbones"],
    "strategies": ["create_strategy", "list_strategies"],
})
__all__ = sorted([*_names, "__version__"])


def __dir__() -> list[str]:
    return __all__

if TYPE_CHECKING:  # static tools see the real names
    from .advisor import Advice, advise
    from .classifier import TransferClassifier
    from .config import DEFAULT_BACKBONE, DataConfig, ModelConfig, RunConfig, StrategyConfig, TrainConfig
    from .data import DataSplits, Samples, load_data
    from .models import create_backbone, create_transfer_model, list_backbones
    from .strategies import create_strategy, list_strategies
