"""Strategy 1: train the whole network (large data, or data unlike the pretraining set)."""

from __future__ import annotations

from .base import ALL_BLOCKS, Phase, Strategy


class FullStrategy(Strategy):
    name = "full"
    description = "train every layer; pretrained layers at a lower learning rate than the new head"

    @classmethod
    def trainable_block_count(cls, value: float | None, num_blocks: int) -> int:
        if value is not None and value != num_blocks:
            raise ValueError(f"trainable_blocks={value:g} is for strategy='partial'; strategy='full' trains all "
                             f"{num_blocks} blocks and the stem")
        return num_blocks

    def phases(self, epochs: int, num_blocks: int) -> list[Phase]:
        head = min(self.config.head_epochs or 0, max(epochs - 1, 0))
        # A short head-only phase first (Keras guide, fastai's fine_tune): a random head's large early gradients
        # would otherwise flow into, and degrade, the pretrained features.
        phases = [Phase("head", head, 0)] if head else []
        return phases + [Phase("finetune", epochs - head, ALL_BLOCKS)]
