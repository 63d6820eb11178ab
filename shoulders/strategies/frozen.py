"""Strategy 3: the convolutional base is a fixed feature extractor under a new classifier."""

from __future__ import annotations

from .base import Phase, Strategy


class FrozenStrategy(Strategy):
    name = "frozen"
    description = "freeze the whole pretrained base; train only the new head, on cached features"
    uses_feature_cache = True  # the base runs once per image, not once per epoch

    def phases(self, epochs: int, num_blocks: int) -> list[Phase]:
        return [Phase("head", epochs, 0)]
