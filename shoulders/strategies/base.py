"""What a fine-tuning strategy is: which blocks train in which phase, how BatchNorm behaves, which learning rates.

A strategy acts only through the model's contract (``TransferModel``: ``feature_extractor()``, ``get_classifier()``,
``stem()`` and ``blocks()``, the backbone's own structure from timm's ``group_matcher``), never its attributes.
It is a small value: its state is its config plus the current phase, so a checkpoint restores it exactly.

The phases are separate optimisation runs (each gets a fresh optimizer and schedule over exactly its trainable
parameters), which is what Lightning's ``unfreeze_and_add_param_group`` approximates: no parameter is ever in
two groups, and a scheduler never meets a param group it was not built with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..config import StrategyConfig

if TYPE_CHECKING:  # the registry's names and defaults stay importable without torch (the CLI checks them first)
    from torch import nn

    from ..models import Block, TransferModel

ALL_BLOCKS = -1  # Phase.trainable_blocks value meaning "every block and the stem"


@dataclass(frozen=True)
class Phase:
    """One stretch of training with a fixed set of trainable blocks."""

    name: str  # "head" (new classifier only) or "finetune"
    epochs: int
    trainable_blocks: int  # from the top; 0 = head only; ALL_BLOCKS = whole network


class Strategy:
    """Base class: subclasses set ``name`` and implement :meth:`phases` and :meth:`trainable_block_count`.

    The class attributes are the strategy's defaults: the plan for an explicitly chosen strategy, the advisor's
    plans and the CLI help read them through the registry (``STRATEGIES.get(name).default_epochs``).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    uses_feature_cache: ClassVar[bool] = False  # True: the backbone never trains, so its features can be cached
    road: ClassVar[str] = "phases"  # which training procedure runs it: epochs of fine-tuning, or "features"
    # Fine-tuning: 10 epochs at head lr 1e-3 (pretrained blocks 0.1x) with AdamW, as measured in FINDINGS'
    # baselines; no head-only warm-up.
    default_epochs: ClassVar[int] = 10
    default_lr: ClassVar[float] = 1e-3
    default_backbone_lr_mult: ClassVar[float] = 0.1
    default_head_epochs: ClassVar[int] = 0
    default_depth: ClassVar[int | None] = None  # top blocks that train, where the strategy lets them vary

    def __init__(self, config: StrategyConfig) -> None:
        self.config = config

    def phases(self, epochs: int, num_blocks: int) -> list[Phase]:
        """The training phases for ``epochs`` epochs in all, on a backbone with ``num_blocks`` blocks."""
        raise NotImplementedError

    @classmethod
    def trainable_block_count(cls, value: float | None, num_blocks: int) -> int:
        """How many of the backbone's ``num_blocks`` blocks train, given ``trainable_blocks=value`` (``None``: the
        strategy's own choice); a value the strategy cannot honour is an error, never silently ignored."""
        raise NotImplementedError

    # -- freezing -----------------------------------------------------------------------------------------
    @staticmethod
    def freeze(module: nn.Module) -> None:
        for p in module.parameters():
            p.requires_grad_(False)

    @staticmethod
    def make_trainable(module: nn.Module) -> None:
        for p in module.parameters():
            p.requires_grad_(True)

    def apply_phase(self, model: TransferModel, phase: Phase) -> dict[str, Any]:
        """Sets ``requires_grad`` for ``phase`` and returns which blocks train (recorded in the run folder)."""
        stem, blocks = model.stem(), model.blocks()
        trainable = trainable_block_list(stem, blocks, phase.trainable_blocks)
        names = {n for b in trainable for n in b.param_names}
        for n, p in model.feature_extractor().named_parameters():
            p.requires_grad_(n in names)
        self.make_trainable(model.get_classifier())
        all_blocks = ([stem] if stem else []) + blocks
        return {
            "phase": phase.name,
            "trainable_blocks": [b.name for b in trainable],
            "frozen_blocks": [b.name for b in all_blocks if b not in trainable],
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "total_params": sum(p.numel() for p in model.parameters()),
        }

    def set_train_mode(self, model: TransferModel) -> None:
        """``model.train()``, then the BatchNorm policy: frozen layers keep fixed running statistics.

        Called at the start of every epoch instead of a bare ``model.train()``, which would silently put frozen
        BatchNorm layers back into training mode. With ``train_bn=False`` (the default) every backbone BatchNorm
        stays in inference mode, the trainable ones still learning their affine weights: measured +6 points on
        Fashion-MNIST and +6 on digits over train-mode BN when fine-tuning on small data (FINDINGS).
        A backbone with nothing trainable goes to eval mode entirely (no dropout in a fixed feature extractor).
        """
        from torch.nn.modules.batchnorm import _BatchNorm

        model.train()
        backbone = model.feature_extractor()
        if not any(p.requires_grad for p in backbone.parameters()):
            backbone.eval()
            return
        for module in backbone.modules():
            if isinstance(module, _BatchNorm):
                trainable = any(p.requires_grad for p in module.parameters(recurse=False))
                if not (self.config.train_bn and trainable):
                    module.eval()

    # -- learning rates -----------------------------------------------------------------------------------
    def param_groups(self, model: TransferModel, lr: float, backbone_lr_mult: float, layer_decay: float | None,
                     weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer groups over trainable parameters only: the head at ``lr``, each backbone block lower.

        Block ``i`` from the top gets ``lr * backbone_lr_mult * layer_decay**i``. Learning rates are set
        directly in each group (not timm's ``lr_scale``, which only timm's own schedulers apply), so any torch
        scheduler that scales base rates keeps the ratios. Biases and norm weights get no weight decay.
        """
        groups: list[dict[str, Any]] = []
        self._add_groups(groups, "head", list(model.get_classifier().named_parameters()), lr, weight_decay)
        stem, blocks = model.stem(), model.blocks()
        params = dict(model.feature_extractor().named_parameters())
        ordered = list(reversed(blocks)) + ([stem] if stem else [])
        for depth, block in enumerate(ordered):
            named = [(n, params[n]) for n in block.param_names if params[n].requires_grad]
            block_lr = lr * backbone_lr_mult * (layer_decay ** depth if layer_decay else 1.0)
            self._add_groups(groups, block.name, named, block_lr, weight_decay)
        return groups

    @staticmethod
    def _add_groups(groups: list[dict[str, Any]], name: str, named: list[tuple[str, nn.Parameter]], lr: float,
                    weight_decay: float) -> None:
        trainable = [(n, p) for n, p in named if p.requires_grad]
        decay = [p for _, p in trainable if p.ndim > 1]
        no_decay = [p for _, p in trainable if p.ndim <= 1]
        if decay:
            groups.append({"params": decay, "lr": lr, "weight_decay": weight_decay, "name": name})
        if no_decay:
            groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": f"{name} (no decay)"})

    def describe(self) -> dict[str, Any]:
        """Name and description (its settings are the run config's ``strategy`` section, recorded once there)."""
        return {"name": self.name, "description": self.description}


def trainable_block_list(stem: Block | None, blocks: list[Block], count: int) -> list[Block]:
    """The blocks that train when the top ``count`` do (``ALL_BLOCKS``: all of them and the stem)."""
    if count == ALL_BLOCKS:
        return ([stem] if stem else []) + blocks
    if count < 0 or count > len(blocks):
        raise ValueError(f"trainable_blocks={count} but this backbone has {len(blocks)} blocks above its stem; "
                         f"choose 0-{len(blocks)} (or strategy='full')")
    return blocks[len(blocks) - count:] if count else []


def resolve_block_count(value: float | None, num_blocks: int, default: int) -> int:
    """``trainable_blocks``: an integer N (top N blocks) or a fraction in (0, 1) of the backbone's blocks."""
    if value is None:
        return min(default, num_blocks)
    if 0 < value < 1:
        return max(1, round(value * num_blocks))
    if value != int(value) or value < 1:
        raise ValueError(f"trainable_blocks={value:g} must be a whole number ≥ 1 or a fraction in (0, 1)")
    if value > num_blocks:
        raise ValueError(f"trainable_blocks={int(value)} is more than the backbone's {num_blocks} blocks; "
                         f"use strategy='full' to train everything")
    return int(value)
