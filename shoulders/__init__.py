"""shoulders: transfer learning for image classification — stand on the shoulders of giants.

Start from a network pretrained on ImageNet, replace its classifier with one for your classes, and fine-tune it
with the strategy that the size of your dataset and its similarity to ImageNet call for.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .advisor import Advice, advise
from .classifier import TransferClassifier
from .config import DEFAULT_BACKBONE, DataConfig, ModelConfig, RunConfig, StrategyConfig, TrainConfig
from .data import DataSplits, Samples, load_data
from .models import create_backbone, create_transfer_model, list_backbones
from .strategies import create_strategy, list_strategies

__all__ = [
    "Advice", "DEFAULT_BACKBONE", "DataConfig", "DataSplits", "ModelConfig", "RunConfig", "Samples", "StrategyConfig",
    "TrainConfig", "TransferClassifier", "__version__", "advise", "create_backbone", "create_strategy",
    "create_transfer_model", "list_backbones", "list_strategies", "load_data",
]
