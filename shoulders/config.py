"""Typed configuration of a training run, saved as ``config.json`` in every run folder.

``None`` means "not set here": the backbone, the plan (the advisor's, or the strategy's own defaults) or the machine
decides. :func:`shoulders.resolution.resolve_config` is the one place that fills them; it never mutates the user's
config, and its resolved copy (no ``None`` left in the fields it owns, no ``auto``) is what a run folder records
as ``config.json``, so ``RunConfig.load(run_dir)`` repeats the run.

A few fields keep ``None`` as a value of their own, an off switch rather than "unset": ``model.weights`` (the
automatic sources), ``model.head_hidden`` (a linear head), ``train.patience`` (no early stopping),
``train.budget`` (no budget: the plan stops near its plateau), ``data.max_per_class`` and ``data.val_max`` (no
cap).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_BACKBONE = "tf_efficientnet_lite0"
# The most images a drawn validation split holds. 5 000 already measure an accuracy to a standard error of 0.3 (at
# 95 %) to 0.7 points (at 50 %); past that, held-out images are training images lost (Fashion-MNIST's 60 000 would
# lose 12 000 to a 0.2 split).
DEFAULT_VAL_MAX = 5000


@dataclass
class DataConfig:
    """How images are read, split and preprocessed."""

    image_size: int | None = None  # square input size; None = the backbone's pretrained size (224 for lite0)
    crop_pct: float | None = None  # None = the backbone's (0.875): the centre crop it was trained with
    val_fraction: float = 0.2  # held out, stratified and seeded, when the data has no val/ split
    val_max: int | None = DEFAULT_VAL_MAX  # ... but at most this many images (None: no cap)
    augment: str | None = None  # none | light | strong; None = the plan's choice
    hflip: bool = False  # off by default: flips destroy orientation-bearing data (digits, text)
    on_bad_image: str = "skip"  # skip (report and go on) | error (stop with the path)
    max_per_class: int | None = None  # cap on training images per class, for quick experiments
    on_duplicate: str = "drop"  # val/test images also in train: drop (so scores are not inflated) | keep | error
    near_duplicates: bool = False  # also report near-duplicates by perceptual hash (needs imagehash; decodes all)
    batch_size: int | None = None  # None = 64; under a launcher the global batch, split over the processes
    num_workers: int | None = None  # None = 0 on small CPU machines, more on GPU machines


@dataclass
class ModelConfig:
    """Which pretrained network and which new head."""

    backbone: str = DEFAULT_BACKBONE  # a name from `shoulders zoo`, an alias, or any timm model name
    weights: str | None = None  # a weights file; None = bundled package, then timm's cache/hub
    pretrained: bool = True  # False = random init (a from-scratch baseline)
    head_hidden: int | None = None  # None = a single linear layer, the usual transfer-learning head
    head_dropout: float = 0.0


@dataclass
class StrategyConfig:
    """Which layers train, and how BatchNorm behaves."""

    name: str = "auto"  # auto (the advisor chooses) | full | partial | frozen
    trainable_blocks: float | None = None  # partial: top N blocks (int) or a fraction (0-1) of them; resolved to
    # the count that trains (full: every block, frozen: 0)
    train_bn: bool = False  # False: BN running statistics stay fixed; +6 points on Fashion-MNIST (FINDINGS)
    head_epochs: int | None = None  # full/partial: epochs of head-only warm-up before unfreezing (0 = none)
    head_solver: str | None = None  # frozen: lbfgs (convex, regularisation chosen on val) | sgd; None = lbfgs for a
    # linear head, sgd otherwise (fine-tuning strategies train the head by gradient descent: sgd)
    feature_views: int = 4  # frozen with augmentation: augmented views of each training image cached
    head_init: str | None = None  # full/partial: default (a fresh head) | probe (LP-FT: the linear probe fitted on
    # frozen features first); None = the plan's


@dataclass
class TrainConfig:
    """Optimisation and the machine it runs on."""

    epochs: int | None = None  # None = the plan's (the strategy's default: see `shoulders train --help`)
    max_steps: int | None = None  # fine-tuning: stop after this many optimizer steps in all (the warm-up and decay
    # are laid over them; the last epoch ends early); None = the plan's (a budget filled within an epoch), else all
    lr: float | None = None  # the new head's learning rate; None = the plan's
    backbone_lr_mult: float | None = None  # pretrained blocks' rate = lr × this; None = the plan's (0.1, or 1.0
    # where the data differs from ImageNet and the features must move further)
    layer_decay: float | None = None  # extra ×decay per block from the top (e.g. 0.8); None = 1.0, no decay
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0  # linear warm-up, then cosine decay to zero
    label_smoothing: float | None = None  # None = the plan's: 0.1 where small, different data is fine-tuned, else 0
    class_weight: str = "auto"  # auto (balanced when the largest class has >= 3x the smallest's images) | balanced
    # (loss weights n / (classes × n_class), the frozen head's solver too) | none; resolved to balanced or none
    patience: int | None = None  # early stopping on validation loss; None = no early stopping
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N; resolved to cpu / cuda (a launcher picks cuda:LOCAL_RANK)
    channels_last: bool = True  # 2x faster fine-tuning on CPU (FINDINGS); harmless on CUDA
    precision: str = "auto"  # training autocast: auto (AMP on CUDA, fp32 on CPUs) | fp32 | bf16 | fp16
    inference_precision: str | None = None  # evaluation, prediction, frozen features; None = as ``precision``
    # (auto: bf16 for a frozen feature extractor on a CPU with native bf16, where it is 2.7x faster)
    feature_cache: bool = True  # frozen strategy: reuse pooled features across runs (keyed by content)
    sync_bn: bool = False  # under a launcher with --train-bn: BatchNorm statistics over the global batch (CUDA only)
    progress: bool = True
    budget: str | None = None  # wall time for the whole run, advice included ("90s", "10m", "1h30m"): the planner
    # fits input size, epochs, strategy and depth in it and the trainer keeps it; None = the plan's default


@dataclass
class RunConfig:
    """Everything that determines a run; saved resolved as ``config.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def override(self, values: dict[str, Any]) -> "RunConfig":
        """A copy with each value that is not ``None`` set, by parameter name (a field name; ``strategy`` is the
        strategy's name): ``cfg.override({"lr": 0.01, "strategy": "full"})``. ``None`` keeps this config's value.

        Raises:
            ValueError: a name that is no setting, with the valid ones.
        """
        out = self.copy()
        for name, value in values.items():
            if name not in PARAMETERS:
                raise ValueError(f"{name}= is not a setting; valid: {', '.join(sorted(PARAMETERS))}")
            if value is not None:
                section, field_name = PARAMETERS[name]
                setattr(getattr(out, section), field_name, value)
        return out

    def copy(self) -> "RunConfig":
        """A deep copy (the resolution step never mutates the config it was given)."""
        return RunConfig.from_dict(self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        """The config of a run folder (``RUN_DIR`` or ``RUN_DIR/config.json``: the resolved config that ran), or
        a JSON file holding a config alone (``{"data": ..., "model": ..., "strategy": ..., "train": ...}``)."""
        from .run_folder import CONFIG_NAME, check_format, load_json

        path = Path(path)
        d = load_json(path / CONFIG_NAME if path.is_dir() else path)
        if not isinstance(d, dict):
            raise ValueError(f"{path} holds no shoulders config (a JSON object is expected)")
        check_format(d, path)
        if "config" not in d:
            return cls.from_dict(d)
        recorded = d["config"]
        data = recorded.get("data")
        if isinstance(data, dict) and "val_max" not in data:  # a run folder from before the cap drew its split
            recorded = {**recorded, "data": {**data, "val_max": None}}  # without one: repeat it that way
        return cls.from_dict(recorded)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        """Builds a config from a dict; unknown keys fail loudly (a typo must not be silently ignored)."""
        unknown_sections = set(d) - set(_SECTIONS)
        if unknown_sections:
            raise ValueError(f"unknown config section(s) {sorted(unknown_sections)}; valid: {sorted(_SECTIONS)}")
        parts = {}
        for f in dataclasses.fields(cls):
            sub_cls = _SECTIONS[f.name]
            values = dict(d.get(f.name) or {})
            known = {sf.name for sf in dataclasses.fields(sub_cls)}
            unknown = set(values) - known
            if unknown:
                raise ValueError(f"unknown {f.name} setting(s) {sorted(unknown)}; valid: {sorted(known)}")
            parts[f.name] = sub_cls(**values)
        return cls(**parts)


_SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "strategy": StrategyConfig,
                              "train": TrainConfig}
# Parameter name → (section, field): every setting by the name a Python caller gives it (the field names are unique
# across sections; the strategy's ``name`` is ``strategy``). The CLI's flags are these names with dashes.
PARAMETERS: dict[str, tuple[str, str]] = {
    ("strategy" if (section, f.name) == ("strategy", "name") else f.name): (section, f.name)
    for section, sub_cls in _SECTIONS.items() for f in dataclasses.fields(sub_cls)
}
