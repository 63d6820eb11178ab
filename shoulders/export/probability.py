"""The module that gets exported: a classifier plus its softmax, so deployed models return probabilities."""

from __future__ import annotations

import torch
from torch import nn


class ProbabilityModel(nn.Module):
    """Wraps a classifier so that its output is class probabilities instead of logits.

    The exported graph then runs the whole pipeline from a normalised image batch to probabilities, and a
    consumer never has to know (or get wrong) which activation the head expects.

    Args:
        classifier: a module mapping a normalised float32 batch (N, 3, H, W) to logits (N, C).
    """

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns softmax probabilities of shape (N, C) for a normalised batch ``x`` of shape (N, 3, H, W)."""
        # Softmax in float32 even if the classifier was cast to a lower precision: probabilities near 0 and 1
        # are where half precision loses the most.
        return torch.softmax(self.classifier(x).float(), dim=-1)
