"""The backbone's own structure, as fine-tuning sees it: a stem, then blocks from bottom to top.

Blocks are timm's coarse parameter groups (``group_matcher(coarse=True)``): the stages of an EfficientNet or
MobileNet, the ``layerN`` of a ResNet, the conv layers of a VGG. Counting depth in these units is what makes
``--trainable-blocks 2`` mean "the top two stages" for every architecture, never "the last N modules".
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from timm.models import group_parameters


@dataclass(frozen=True)
class Block:
    """One parameter group of the backbone."""

    name: str  # readable: the module prefixes it covers, e.g. "blocks.6, conv_head, bn2"
    param_names: tuple[str, ...]


def backbone_blocks(backbone: nn.Module) -> tuple[Block | None, list[Block]]:
    """Splits ``backbone``'s parameters into (stem, blocks bottom→top) through its ``group_matcher``.

    Models without a ``group_matcher`` fall back to their top-level children, in definition order.
    """
    names = [n for n, _ in backbone.named_parameters()]
    groups: list[list[str]]
    if hasattr(backbone, "group_matcher"):
        try:
            matcher = backbone.group_matcher(coarse=True)
        except NotImplementedError:
            matcher = None
    else:
        matcher = None
    if matcher is not None:
        groups = [list(v) for v in group_parameters(backbone, matcher).values()]
    else:
        groups = []
        for child_name, child in backbone.named_children():
            child_params = [f"{child_name}.{n}" for n, _ in child.named_parameters()]
            if child_params:
                groups.append(child_params)
    covered = {n for g in groups for n in g}
    missing = [n for n in names if n not in covered]
    if missing:  # parameters no matcher rule named join the top block rather than silently staying frozen
        groups[-1].extend(missing)
    groups = [g for g in groups if g]
    owners: dict[str, set[int]] = {}
    for i, g in enumerate(groups):
        for n in g:
            owners.setdefault(n.split(".")[0], set()).add(i)
    blocks = [Block(_group_name(g, owners), tuple(g)) for g in groups]
    if matcher is not None and "stem" in matcher and len(blocks) > 1:
        return blocks[0], blocks[1:]
    return None, blocks


def _group_name(param_names: list[str], owners: dict[str, set[int]]) -> str:
    """Names a group by its top-level modules; one shared with other groups (``blocks``) gets its index too."""
    prefixes: list[str] = []
    for name in param_names:
        parts = name.split(".")
        shared = len(owners[parts[0]]) > 1
        prefix = ".".join(parts[:2]) if shared and len(parts) > 2 else parts[0]
        if prefix not in prefixes:
            prefixes.append(prefix)
    return ", ".join(prefixes)
