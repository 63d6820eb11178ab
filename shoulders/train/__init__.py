"""Training: the loop (plain functions), the run orchestration, feature caching, checkpoints and history."""

from __future__ import annotations

from .checkpoint import load_checkpoint, save_checkpoint
from .device import Precision, cpu_supports_bf16, resolve_device, resolve_precision
from .distributed import DistContext, barrier, broadcast_object, init_distributed, is_main
from .features import FeatureCache, default_cache_dir, extract_features
from .trainer import FitResult, fit
from .head_solver import fit_linear_head
from .loop import TrainingDivergedError, evaluate, predict_logits, train_one_epoch, warmup_cosine

__all__ = [
    "DistContext", "FeatureCache", "FitResult", "Precision",
    "TrainingDivergedError", "barrier", "broadcast_object", "cpu_supports_bf16", "default_cache_dir", "evaluate",
    "extract_features", "fit", "fit_linear_head", "init_distributed", "is_main", "load_checkpoint", "predict_logits",
    "resolve_device", "resolve_precision", "save_checkpoint", "train_one_epoch", "warmup_cosine",
]
