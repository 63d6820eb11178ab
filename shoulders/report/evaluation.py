"""Evaluation of a run on a split: metrics, top losses and their figures, written into the run folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from shoulders.report.metrics import compute_metrics, top_losses
from shoulders.run_folder import CONFUSION_NAME, CURVES_NAME, EVALUATION_NAME, HISTORY_NAME, TOP_LOSSES_NAME, save_json
from shoulders.report.plots import plot_confusion_matrix, plot_history, plot_top_losses

logger = logging.getLogger(__name__)



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

    Returns:
        ``{"split", "metrics", "top_losses", "files"}``; each top-loss item carries a ``description``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = compute_metrics(y_true, proba, classes)
    losses = top_losses(y_true, proba, k=top_k_losses)
    for item in losses:
        item["description"] = describe(item["index"])
    images = _load_images([item["index"] for item in losses], images_loader)

    files = {
        "confusion_matrix": plot_confusion_matrix(metrics["confusion_matrix"], classes, run_dir / CONFUSION_NAME).name,
        "top_losses": plot_top_losses(images, losses, classes, run_dir / TOP_LOSSES_NAME).name,
    }
    if (run_dir / HISTORY_NAME).is_file():
        files["curves"] = plot_history(run_dir / HISTORY_NAME, run_dir / CURVES_NAME).name

    evaluation = {"split": split_name, "metrics": metrics, "top_losses": losses, "files": files}
    save_json(evaluation, run_dir / EVALUATION_NAME)
    return evaluation
