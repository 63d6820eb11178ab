"""Strategy 2: freeze the lower blocks (general features), train the top ones (specific features)."""

from __future__ import annotations

from .base import Phase, Strategy, resolve_block_count


class PartialStrategy(Strategy):
    name = "partial"
    description = "freeze the lower blocks, train the top N blocks and the new head"
    default_depth = 2  # the top two stages: the seed's strategy 2 for large, similar data

    @classmethod
    def trainable_block_count(cls, value: float | None, num_blocks: int) -> int:
        return resolve_block_count(value, num_blocks, cls.default_depth)

    def phases(self, epochs: int, num_blocks: int) -> list[Phase]:
        count = self.trainable_block_count(self.config.trainable_blocks, num_blocks)
        head = min(self.config.head_epochs or 0, max(epochs - 1, 0))
        phases = [Phase("head", head, 0)] if head else []
        return phases + [Phase("finetune", epochs - head, count)]
