"""Typed configuration of a training run, saved as ``config.json`` in every run folder.

``None`` means "use the default of the backbone or of the plan" (the advisor's plan, or the strategy's defaults);
:func:`resolve` never mutates the user's config, and the resolved copy is what a run folder records, so any
result can be reproduced from its folder alone.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_BACKBONE = "tf_efficientnet_lite0"


@dataclass
class DataConfig:
    """How images are read, split and preprocessed."""

    image_size: int | None = None  # square input size; None = the backbone's pretrained size (224 for lite0)
    crop_pct: float | None = None  # None = the backbone's (0.875): the centre crop it was trained with
    val_fraction: float = 0.2  # held out, stratified and seeded, when the data has no val/ split
    augment: str | None = None  # none | light | strong; None = the plan's choice
    hflip: bool = False  # off by default: flips destroy orientation-bearing data (digits, text)
    on_bad_image: str = "skip"  # skip (report and go on) | error (stop with the path)
    max_per_class: int | None = None  # cap on training images per class, for quick experiments
    on_duplicate: str = "drop"  # val/test images also in train: drop (so scores are not inflated) | keep | error
    near_duplicates: bool = False  # also report near-duplicates by perceptual hash (needs imagehash; decodes all)
    batch_size: int = 64
    num_workers: int | None = None  # None = 0 on small CPU machines, more on GPU machines


@dataclass
class ModelConfig:
    """Which pretrained network and which new head."""

    backbone: str = DEFAULT_BACKBONE
    weights: str | None = None  # a weights file; None = bundled package, then timm's cache/hub
    pretrained: bool = True  # False = random init (a from-scratch baseline)
    head_hidden: int | None = None  # None = a single linear layer, the usual transfer-learning head
    head_dropout: float = 0.0


@dataclass
class StrategyConfig:
    """Which layers train, and how BatchNorm behaves."""

    name: str = "auto"  # auto (the advisor chooses) | full | partial | frozen
    trainable_blocks: float | None = None  # partial: top N blocks (int) or a fraction (0-1) of them
    train_bn: bool = False  # False: BN running statistics stay fixed; +6 points on Fashion-MNIST (FINDINGS)
    head_epochs: int | None = None  # full/partial: epochs of head-only warm-up before unfreezing (0 = none)
    head_solver: str | None = None  # frozen: lbfgs (convex, regularisation chosen on val) | sgd; None = auto
    feature_views: int = 4  # frozen with augmentation: augmented views of each training image cached


@dataclass
class TrainConfig:
    """Optimisation and the machine it runs on."""

    epochs: int | None = None  # None = the plan's (10 for fine-tuning, 30 for a head on cached features)
    lr: float | None = None  # the new head's learning rate; None = 1e-3
    backbone_lr_mult: float | None = None  # pretrained blocks' rate = lr × this; None = the plan's (0.1, or 1.0
    # where the data differs from ImageNet and the features must move further)
    layer_decay: float | None = None  # extra ×decay per block from the top (e.g. 0.8); None = no decay
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0  # linear warm-up, then cosine decay to zero
    label_smoothing: float = 0.0
    patience: int | None = None  # early stopping on validation loss; None = no early stopping
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    channels_last: bool = True  # 2x faster fine-tuning on CPU (FINDINGS); harmless on CUDA
    precision: str = "auto"  # auto (bf16 autocast for frozen features on bf16 CPUs, AMP on CUDA) | fp32 | bf16 | fp16
    feature_cache: bool = True  # frozen strategy: reuse pooled features across runs (keyed by content)
    sync_bn: bool = False  # under a launcher with --train-bn: BatchNorm statistics over the global batch (CUDA only)
    progress: bool = True


@dataclass
class RunConfig:
    """Everything that determines a run; saved resolved as ``config.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        """Builds a config from a dict; unknown keys fail loudly (a typo must not be silently ignored)."""
        parts = {}
        for f in dataclasses.fields(cls):
            sub_cls = {"data": DataConfig, "model": ModelConfig, "strategy": StrategyConfig, "train": TrainConfig}[f.name]
            values = dict(d.get(f.name, {}))
            known = {sf.name for sf in dataclasses.fields(sub_cls)}
            unknown = set(values) - known
            if unknown:
                raise ValueError(f"unknown {f.name} setting(s) {sorted(unknown)}; valid: {sorted(known)}")
            parts[f.name] = sub_cls(**values)
        return cls(**parts)


def save_json(obj: Any, path: str | Path) -> Path:
    """Writes JSON atomically (write a temporary file, then rename) so a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    tmp.replace(path)
    return path


def load_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing; is {path.parent} a shoulders run folder?") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); the run folder is damaged: retrain or restore it") from None


def _json_default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
