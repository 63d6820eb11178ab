"""The predict path's pieces, shared by ``TransferClassifier``, ``shoulders serve`` and the pipelines: prediction
inputs as ``Samples``, how a fitted model predicts (:class:`Inference`), and the rows ``predict --json`` prints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from .data import Samples, collect_paths, samples_from_arrays
from .explain.tta import TTAModel, View, merge_views
from .export.runtime import top_k_rows  # noqa: F401  (the rows' one definition, torch-free for the ONNX road)
from .train import Precision, predict_logits

ImagesInput = str | Path | Sequence[str | Path] | np.ndarray | Samples


@dataclass(frozen=True)
class Inference:
    """How a fitted classifier predicts (``TransferClassifier.inference()``): ``predict_proba`` runs through it,
    and so does ``shoulders serve``, so that a served prediction is the library's prediction."""

    transform: Callable[[Image.Image], torch.Tensor]  # RGB image → normalised tensor (the eval transform)
    device: torch.device
    precision: Precision  # its ``inference`` dtype is the one used here (bf16 for frozen features on some CPUs)
    channels_last: bool

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def probabilities(self, model: nn.Module, batches: Iterable[tuple[torch.Tensor, Any]], *,
                      views: Sequence[View] | None = None) -> np.ndarray:
        """Softmax of ``model`` over ``(images, targets)`` batches (a DataLoader, or a list of one batch); with
        ``views``, the average over those test-time views."""
        logits, _ = predict_logits(model if views is None else TTAModel(model, views), batches, self.device,
                                   precision=self.precision, channels_last=self.channels_last)
        if views is not None:
            return merge_views(logits)
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()


def as_samples(X: ImagesInput) -> Samples:
    """Prediction inputs → ``Samples``: a file, a directory, a glob, a list of those, or an image array."""
    if isinstance(X, Samples):
        return X
    if isinstance(X, np.ndarray):
        return samples_from_arrays(X, np.zeros(len(X), dtype=np.int64))[0]
    inputs = [X] if isinstance(X, (str, Path)) else list(X)
    paths = collect_paths([str(p) for p in inputs])
    return Samples(["?"], np.zeros(len(paths), dtype=np.int64), paths=paths)
