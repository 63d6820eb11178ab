"""Strategy 2: freeze the lower blocks (general features), train the top ones (specific features)."""

from __future__ import annotations

from .base import Phase, Strategy, resolve_block_count

DEFAULT_TRAINABLE_BLOCKS = 2


class PartialStrategy(Strategy):
    name = "partial"
    description = "freeze the lower blocks, train the top N blocks and the new head"

    def phases(self, epochs: int, num_blocks: int) -> list[Phase]:
        count = resolve_block_count(self.config.trainable_blocks, num_blocks, DEFAULT_TRAINABLE_BLOCKS)
        head = min(self.config.head_epochs or 0, max(epochs - 1, 0))
        phases = [Phase("head", head, 0)] if head else []
        return phases + [Phase("finetune", epochs - head, count)]
