"""A run folder loaded for serving: the image → tensor step for request threads, the batch → rows step for the
micro-batcher, and what ``/info`` tells about the run.

Both steps are the library's own (:meth:`TransferClassifier.inference`, :func:`top_k_rows`), so a served prediction
is what ``TransferClassifier.predict_top_k`` gives for the same file: same transform, same precision, same rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from shoulders.classifier import TransferClassifier, top_k_rows
from shoulders.run_folder import MODEL_NAME


@dataclass(frozen=True)
class Prepared:
    """One image ready for the model: its name and its normalised tensor."""

    name: str
    tensor: torch.Tensor


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ServedModel:
    """A fitted classifier read from ``run_dir`` (``TransferClassifier.load``: a missing or damaged folder raises
    its ``FileNotFoundError`` / ``ValueError`` here, before any port is opened).

    Args:
        run_dir: a run folder from ``shoulders train``.
        device: ``None`` keeps the run's device setting (``auto``: CUDA when present).
    """

    def __init__(self, run_dir: str | Path, device: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.classifier = TransferClassifier.load(self.run_dir, device=device)
        self.inference = self.classifier.inference()
        self.views = self.classifier.tta_views()  # the run's test-time augmentation rule, as predict_top_k's
        self.model = self.classifier.model_.to(self.inference.device, memory_format=self.inference.memory_format)
        self.model.eval()
        self.model_sha256 = file_sha256(self.run_dir / MODEL_NAME)

    @property
    def classes(self) -> list[str]:
        return self.classifier.classes_

    def prepare(self, name: str, image: Image.Image) -> Prepared:
        """The eval transform of the run (resize, centre crop, normalise) on a decoded RGB image."""
        return Prepared(name, self.inference.transform(image))

    def probabilities(self, batch: list[Prepared]) -> list[np.ndarray]:
        """One forward over the batch (per test-time view, where the run uses TTA), in the run's precision and
        memory layout: a probability row per image.

        This is the micro-batcher's function; each request then takes its own top-k (:meth:`rows`)."""
        images = torch.stack([p.tensor for p in batch])
        targets = torch.zeros(len(batch), dtype=torch.long)
        return list(self.inference.probabilities(self.model, [(images, targets)], views=self.views))

    def rows(self, names: list[str], probabilities: list[np.ndarray], k: int) -> list[dict[str, Any]]:
        """The rows of ``shoulders predict --json`` for one request: ``path`` (the upload's name), ``label``,
        ``top_k`` with ``k`` classes."""
        return top_k_rows(np.stack(probabilities), self.classes, names, k)

    def info(self) -> dict[str, Any]:
        """What ``GET /info`` answers: classes, input spec, backbone, weights and their hashes, metrics."""
        clf, inf = self.classifier, self.inference
        data = clf.data_config_
        return {
            "run_dir": str(self.run_dir),
            "classes": list(clf.classes_),
            "backbone": clf.config_.model.backbone,
            "strategy": clf.strategy_.get("name", clf.config_.strategy.name),
            "input": {"size": data["input_size"], "mean": data["mean"], "std": data["std"],
                      "interpolation": data["interpolation"], "crop_pct": data["crop_pct"],
                      "crop_mode": data["crop_mode"], "color": "RGB"},
            "model_sha256": self.model_sha256,
            "pretrained_weights": clf.weights_.to_dict(),
            "device": str(inf.device),
            "precision": inf.precision.inference,
            "channels_last": inf.channels_last,
            "tta": clf.tta_decision().to_dict(),
            "metrics": clf.metrics_,
        }
