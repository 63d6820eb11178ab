"""Device and numeric precision: one code path for the CPU, one GPU, and (through the launcher) many."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ContextManager

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → the first CUDA device when present, else the CPU; explicit names are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but PyTorch sees no CUDA GPU here; use device='cpu'")
    return device


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX); elsewhere bf16 is emulated."""
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool((check and check()) or (amx and amx()))


@dataclass(frozen=True)
class Precision:
    """The autocast dtypes for training and for inference, resolved once per run and recorded."""

    train: str  # "fp32" | "bf16" | "fp16": the training forward and backward
    inference: str  # evaluation, prediction and frozen-feature extraction

    def autocast(self, device: torch.device, inference: bool = False) -> ContextManager:
        name = self.inference if inference else self.train
        if name == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if name == "bf16" else torch.float16
        return torch.autocast(device_type=device.type, dtype=dtype)

    @property
    def needs_grad_scaler(self) -> bool:
        return self.train == "fp16"


def native_bf16(device: torch.device) -> bool:
    """True where ``device`` computes bf16 natively (a CUDA GPU with bf16, or :func:`cpu_supports_bf16`)."""
    return torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_supports_bf16()


def choose_precision(train: str, inference: str | None, device_type: str, native: bool,
                     fixed_features: bool = False) -> Precision:
    """The run's autocast dtypes, from the settings and the machine's facts alone (a pure function).

    ``auto``: on CUDA, AMP everywhere (bf16 where ``native``, else fp16). On the CPU, fp32 training (bf16 autocast
    does not speed up the backward pass there, FINDINGS) and fp32 inference, except for a fixed feature extractor
    (``fixed_features``: the frozen strategy) on a CPU with native bf16, which extracts features in bf16 (2.7x
    faster at 224 px, pooled features at cosine >= 0.999 to fp32) and therefore also predicts in bf16, so that
    the head always sees the kind of features it was fitted on. ``inference`` ``None`` follows ``train``.
    """
    for parameter, name in (("precision", train), ("inference_precision", inference)):
        if name is not None and name not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"{parameter}={name!r} is unknown; choose auto, fp32, bf16 or fp16")
    if train == "auto":
        if device_type == "cuda":
            train = auto_inference = "bf16" if native else "fp16"
        else:
            train, auto_inference = "fp32", "bf16" if fixed_features and native else "fp32"
    else:
        auto_inference = train
    inference = auto_inference if inference in (None, "auto") else inference
    if device_type != "cuda" and "fp16" in (train, inference):
        raise ValueError("precision='fp16' autocast is for CUDA; on the CPU use precision='bf16' or 'fp32'")
    return Precision(train=train, inference=inference)


def resolve_precision(name: str, device: torch.device, fixed_features: bool = False) -> Precision:
    """:func:`choose_precision` for ``device`` as this machine has it."""
    return choose_precision(name, None, device.type, native_bf16(device), fixed_features)
