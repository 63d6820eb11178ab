"""Strategy 3: the convolutional base is a fixed feature extractor under a new classifier."""

from __future__ import annotations

from .base import Phase, Strategy


class FrozenStrategy(Strategy):
    name = "frozen"
    description = "freeze the whole pretrained base; train only the new head, on cached features"
    uses_feature_cache = True  # the base runs once per image, not once per epoch
    road = "features"
    # 30 cheap epochs on cached features when the head is trained by SGD (the default L-BFGS solver ignores
    # epochs and picks its regularisation on validation).
    default_epochs = 30
    head_solvers = ("lbfgs", "sgd")  # lbfgs: convex, for a linear head; sgd: the epoch loop, for any head

    @classmethod
    def trainable_block_count(cls, value: float | None, num_blocks: int) -> int:
        if value:
            raise ValueError(f"trainable_blocks={value:g} is for strategy='partial'; strategy='frozen' trains "
                             "the head only")
        return 0

    @classmethod
    def default_head_solver(cls, linear_head: bool) -> str:
        """L-BFGS finds a linear head's optimum exactly; any other head needs the gradient loop."""
        return "lbfgs" if linear_head else "sgd"

    def phases(self, epochs: int, num_blocks: int) -> list[Phase]:
        return [Phase("head", epochs, 0)]
