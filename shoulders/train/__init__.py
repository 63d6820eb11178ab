"""Training: the loop (plain functions), the run orchestration, feature caching, checkpoints and history.

Names are imported on first use (``lazy_loader``): prediction needs the loop and the device helpers, not the
trainer's DDP and timm imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "checkpoint": ["load_checkpoint", "save_checkpoint"],
    "device": ["Precision", "cpu_supports_bf16", "resolve_device", "resolve_precision"],
    "distributed": ["DistContext", "barrier", "broadcast_object", "init_distributed", "is_main"],
    "features": ["FeatureCache", "default_cache_dir", "extract_features"],
    "trainer": ["FitResult", "fit"],
    "head_solver": ["fit_linear_head"],
    "imbalance": ["ClassWeighting", "resolve_class_weight"],
    "interrupt": ["TrainingInterrupted", "interruptible"],
    "loop": ["TrainingDivergedError", "evaluate", "predict_logits", "train_one_epoch", "warmup_cosine"],
})

if TYPE_CHECKING:
    from .checkpoint import load_checkpoint, save_checkpoint
    from .device import Precision, cpu_supports_bf16, resolve_device, resolve_precision
    from .distributed import DistContext, barrier, broadcast_object, init_distributed, is_main
    from .features import FeatureCache, default_cache_dir, extract_features
    from .head_solver import fit_linear_head
    from .imbalance import ClassWeighting, resolve_class_weight
    from .interrupt import TrainingInterrupted, interruptible
    from .loop import TrainingDivergedError, evaluate, predict_logits, train_one_epoch, warmup_cosine
    from .trainer import FitResult, fit
