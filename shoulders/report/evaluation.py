"""Evaluation of a run on a split: metrics, top losses and their figures, written into the run folder."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from shoulders.report.metrics import compute_metrics, top_losses
from shoulders.report.plots import plot_confusion_matrix, plot_history, plot_top_losses

logger = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.json"
CONFUSION_FILE = "confusion_matrix.png"
TOP_LOSSES_FILE = "top_losses.png"
CURVES_FILE = "curves.png"
HISTORY_FILE = "history.csv"


def _load_images(indices: list[int], images_loader: Callable[[int], Image.Image]) -> list[Image.Image | None]:
    """Loads the gallery images; one unreadable file leaves a blank tile instead of losing the whole report."""
    images: list[Image.Image | None] = []
    for index in indices:
        try:
            images.append(images_loader(index))
        except (OSError, ValueError) as error:
            logger.warning("could not load image %d for the top-loss gallery: %s", index, error)
            images.append(None)
    return images


def write_evaluation(
    run_dir: str | Path,
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: list[str],
    images_loader: Callable[[int], Image.Image],
    describe: Callable[[int], str],
    split_name: str,
    top_k_losses: int = 16,
    bad_images: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Computes the metrics of one split and writes them, with their figures, into the run folder.

    Writes ``evaluation.json``, ``confusion_matrix.png``, ``top_losses.png`` and, when the run has a
    ``history.csv``, ``curves.png``. :func:`shoulders.report.render_report` reads these back.

    Args:
        run_dir: the run folder.
        y_true: integer class indices, shape (N,).
        proba: predicted probabilities, shape (N, C).
        classes: class names, aligned with the columns of ``proba``.
        images_loader: returns the image of sample ``i`` (only called for the top losses).
        describe: returns a human-readable description of sample ``i`` (typically its file path).
        split_name: which split was evaluated ("val", "test", ...), shown in the report.
        top_k_losses: how many misclassified images to keep in the gallery.
        bad_images: files that could not be read and were left out (``{"path", "reason"}``), recorded as is.

    Returns:
        ``{"split", "metrics", "top_losses", "files", "bad_images"}``; each top-loss item carries a
        ``description``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = compute_metrics(y_true, proba, classes)
    losses = top_losses(y_true, proba, k=top_k_losses)
    for item in losses:
        item["description"] = describe(item["index"])
    images = _load_images([item["index"] for item in losses], images_loader)

    files = {
        "confusion_matrix": plot_confusion_matrix(metrics["confusion_matrix"], classes, run_dir / CONFUSION_FILE).name,
        "top_losses": plot_top_losses(images, losses, classes, run_dir / TOP_LOSSES_FILE).name,
    }
    if (run_dir / HISTORY_FILE).is_file():
        files["curves"] = plot_history(run_dir / HISTORY_FILE, run_dir / CURVES_FILE).name

    evaluation = {"split": split_name, "metrics": metrics, "top_losses": losses, "files": files,
                  "bad_images": list(bad_images or [])}
    (run_dir / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=2), encoding="utf-8")
    return evaluation
