"""Evaluation of a run on a split: metrics, top losses and their figures, written into the run folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from shoulders.report.metrics import compute_metrics, top_losses
from shoulders.run_folder import CONFUSION_NAME, CURVES_NAME, EVALUATION_NAME, HISTORY_NAME, TOP_LOSSES_NAME, save_json
from shoulders.report.plots import plot_confusion_matrix, plot_history, plot_top_losses

logger = logging.getLogger(__name__)

# (sample indices, one class index per sample) → one heatmap per sample, at the image's size, values in [0, 1]
HeatmapMaker = Callable[[list[int], list[int]], Sequence[np.ndarray]]


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


def _heatmaps(maker: HeatmapMaker | None, losses: list[dict[str, Any]],
              images: list[Image.Image | None]) -> tuple[list[np.ndarray] | None, str]:
    """The top losses' heatmaps (of the predicted class) and a line saying what the gallery shows."""
    if maker is None:
        return None, 'no heatmaps: pip install "shoulders[explain]" to see where the network looked'
    if not losses or any(image is None for image in images):
        return None, "no heatmaps: no misclassified image, or one could not be read"
    try:
        maps = maker([item["index"] for item in losses], [item["predicted"] for item in losses])
    except (RuntimeError, ValueError) as error:  # a gallery without heatmaps beats no evaluation at all
        logger.warning("heatmaps for the top losses failed: %s", error)
        return None, f"no heatmaps: {error}"
    return list(maps), "Grad-CAM heatmap of the predicted class beside each image"


def write_evaluation(
    run_dir: str | Path,
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: list[str],
    images_loader: Callable[[int], Image.Image],
    describe: Callable[[int], str],
    split_name: str,
    top_k_losses: int = 16,
    heatmaps: HeatmapMaker | None = None,
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
        heatmaps: returns, for sample indices and one class per sample, a heatmap per sample at the image's
            size; the gallery then shows where the network looked for its (wrong) predicted class.
        bad_images: files that could not be read and were left out (``{"path", "reason"}``), recorded as is.

    Returns:
        ``{"split", "metrics", "top_losses", "files", "heatmaps", "bad_images"}``; each top-loss item carries a
        ``description``; ``heatmaps`` says whether the gallery has them and, if not, why.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = compute_metrics(y_true, proba, classes)
    losses = top_losses(y_true, proba, k=top_k_losses)
    for item in losses:
        item["description"] = describe(item["index"])
    images = _load_images([item["index"] for item in losses], images_loader)
    maps, heatmap_note = _heatmaps(heatmaps, losses, images)

    files = {
        "confusion_matrix": plot_confusion_matrix(metrics["confusion_matrix"], classes, run_dir / CONFUSION_NAME).name,
        "top_losses": plot_top_losses(images, losses, classes, run_dir / TOP_LOSSES_NAME, heatmaps=maps).name,
    }
    if (run_dir / HISTORY_NAME).is_file():
        files["curves"] = plot_history(run_dir / HISTORY_NAME, run_dir / CURVES_NAME).name

    evaluation = {"split": split_name, "metrics": metrics, "top_losses": losses, "files": files,
                  "heatmaps": heatmap_note, "bad_images": list(bad_images or [])}
    save_json(evaluation, run_dir / EVALUATION_NAME)
    return evaluation
