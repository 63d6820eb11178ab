"""Figures for the report: training curves, confusion matrix, top-loss gallery.

Figures are built with ``matplotlib.figure.Figure`` directly rather than ``pyplot``: no global backend or
figure registry is touched, so plotting is headless (Agg) and safe to call from a server or a test run.
Each ``plot_*`` function writes a PNG; the ``*_figure`` builders are shared with :mod:`shoulders.report.page`,
which embeds the same figures without going through the file system.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image
from sklearn.metrics import ConfusionMatrixDisplay

from shoulders.run_folder import read_history as read_history_file

HISTORY_NUMERIC = ("epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds")
DPI = 100
MAX_ANNOTATED_CLASSES = 20  # beyond this the per-cell numbers overlap and hide the colours


def read_history(history: str | Path | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Reads ``history.csv`` (or takes rows already read) into dicts with floats for the numeric columns.

    Empty or missing numeric cells become NaN, so a run without a validation split still plots its train curves.
    """
    if isinstance(history, (str, Path)):
        history = read_history_file(history)
    rows = []
    for raw in history:
        row: dict[str, Any] = dict(raw)
        for key in HISTORY_NUMERIC:
            value = row.get(key)
            try:
                row[key] = float(value) if value not in (None, "") else math.nan
            except (TypeError, ValueError):
                row[key] = math.nan
        row["phase"] = str(row.get("phase") or "")
        rows.append(row)
    return rows


def figure_png(fig: Figure) -> bytes:
    """Renders a figure to PNG bytes with the Agg canvas."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(figure_png(fig))
    return path


def _phase_starts(rows: Sequence[Mapping[str, Any]]) -> list[tuple[int, str]]:
    """Row indices where a new phase begins (the first row included), with the phase name."""
    return [(i, row["phase"]) for i, row in enumerate(rows) if i == 0 or row["phase"] != rows[i - 1]["phase"]]


def history_figure(history: str | Path | Iterable[Mapping[str, Any]]) -> Figure:
    """Loss and accuracy per epoch, train and validation, with a labelled line where each phase begins."""
    rows = read_history(history)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = np.array([row["epoch"] for row in rows])
    panels = ((ax_loss, "loss", "Loss"), (ax_acc, "accuracy", "Accuracy"))
    for ax, metric, title in panels:
        for split, style in (("train", "-o"), ("val", "-s")):
            values = np.array([row[f"{split}_{metric}"] for row in rows])
            if np.isfinite(values).any():
                ax.plot(epochs, values, style, markersize=3, label=split)
        ax.set_title(title, pad=14)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        for i, phase in _phase_starts(rows):
            # The boundary sits halfway between the last epoch of one phase and the first of the next.
            x = epochs[i] if i == 0 else (epochs[i - 1] + epochs[i]) / 2
            if i > 0:
                ax.axvline(x, color="grey", linestyle="--", linewidth=1)
            # Above the frame, so the label never hides a point of the curves.
            ax.annotate(
                phase, xy=(x, 1.0), xycoords=("data", "axes fraction"), xytext=(2, 2),
                textcoords="offset points", fontsize=8, color="dimgrey", va="bottom",
            )  # fmt: skip
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="center right")
    if not rows:
        ax_loss.text(0.5, 0.5, "history is empty", ha="center", transform=ax_loss.transAxes)
    return fig


def plot_history(history_csv_or_rows: str | Path | Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Writes the training curves (see :func:`history_figure`) as a PNG.

    Args:
        history_csv_or_rows: path of ``history.csv`` or its rows as mappings.
        path: where to write the PNG.

    Returns:
        ``path`` as a ``Path``.
    """
    return _save(history_figure(history_csv_or_rows), path)


def confusion_figure(
    cm: Sequence[Sequence[float]] | np.ndarray, classes: list[str], normalized: bool = True
) -> Figure:
    """Confusion-matrix heat map (rows = true class); ``normalized`` shows each row as fractions of its total."""
    matrix = np.asarray(cm, dtype=np.float64)
    if matrix.shape != (len(classes), len(classes)):
        raise ValueError(f"confusion matrix has shape {matrix.shape}, expected {len(classes)}x{len(classes)}")
    if normalized:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    side = min(max(4.5, 0.45 * len(classes) + 2.5), 30)
    fig = Figure(figsize=(side + 1, side), layout="constrained")
    ax = fig.subplots()
    display = ConfusionMatrixDisplay(matrix if normalized else matrix.astype(np.int64), display_labels=classes)
    display.plot(
        ax=ax, cmap="Blues", colorbar=True, xticks_rotation=45,
        include_values=len(classes) <= MAX_ANNOTATED_CLASSES, values_format=".2f" if normalized else "d",
    )  # fmt: skip
    ax.set_title("Confusion matrix" + (" (row-normalised)" if normalized else " (counts)"))
    return fig


def plot_confusion_matrix(
    cm: Sequence[Sequence[float]] | np.ndarray, classes: list[str], path: str | Path, normalized: bool = True
) -> Path:
    """Writes a confusion-matrix heat map as a PNG.

    Args:
        cm: square matrix of counts or row-normalised values, rows = true class.
        classes: class names in matrix order.
        path: where to write the PNG.
        normalized: show each row divided by its total (idempotent on an already normalised matrix).

    Returns:
        ``path`` as a ``Path``.
    """
    return _save(confusion_figure(cm, classes, normalized), path)


def top_losses_figure(
    images: Sequence[Image.Image | None], items: Sequence[Mapping[str, Any]], classes: list[str],
    heatmaps: Sequence[np.ndarray] | None = None,
) -> Figure:
    """Gallery of misclassified images titled ``true / predicted p=…``; a ``None`` image shows as a blank tile.

    With ``heatmaps`` (one per image, at its size, in [0, 1]), each image has its heatmap overlaid beside it.
    """
    n = len(items)
    per_item = 2 if heatmaps is not None else 1
    cols = min(4 if per_item == 1 else 2, max(n, 1))  # with heatmaps: two (image, heatmap) pairs per row
    rows = max(math.ceil(n / cols), 1)
    side = 3.2 if per_item == 1 else 2.6
    fig = Figure(figsize=(max(side * cols * per_item, 6), (side + 0.3) * rows), layout="constrained")
    if n == 0:
        fig.text(0.5, 0.5, "no misclassified images", ha="center", va="center", fontsize=14)
        return fig
    axes = np.atleast_1d(fig.subplots(rows, cols * per_item)).ravel()
    for i, (image, item) in enumerate(zip(images, items)):
        ax = axes[i * per_item]
        if image is not None:
            ax.imshow(image.convert("RGB"))
        names = f"{classes[item['true']]} / {classes[item['predicted']]}"
        ax.set_title(f"{names}\np={item['p_pred']:.2f} (true p={item['p_true']:.2f})",
                     fontsize=9 if per_item == 1 else 11)
        if heatmaps is not None:
            _heatmap_panel(axes[i * per_item + 1], image, heatmaps[i])
    for ax in axes:
        ax.axis("off")
    title = "Top losses: true / predicted" + ("\n(each beside its heatmap: where the network looked for the "
                                              "predicted class)" if heatmaps is not None else "")
    fig.suptitle(title, fontsize=12)
    return fig


def _heatmap_panel(ax: Any, image: Image.Image | None, heatmap: np.ndarray) -> None:
    """The image in grey with the heatmap (jet, half transparent) over it, in the same pixel frame."""
    if image is not None:
        ax.imshow(image.convert("L"), cmap="gray")
    ax.imshow(heatmap, cmap="jet", alpha=0.5, vmin=0.0, vmax=1.0, interpolation="bilinear")


def plot_top_losses(
    images: Sequence[Image.Image | None], items: Sequence[Mapping[str, Any]], classes: list[str], path: str | Path,
    heatmaps: Sequence[np.ndarray] | None = None,
) -> Path:
    """Writes the top-loss gallery as a PNG.

    Args:
        images: one PIL image per item (``None`` where it could not be read).
        items: entries from :func:`shoulders.report.top_losses` (class indices in ``true``/``predicted``).
        classes: class names.
        path: where to write the PNG.
        heatmaps: optional heatmap per image (see :func:`top_losses_figure`).

    Returns:
        ``path`` as a ``Path``.
    """
    if len(images) != len(items):
        raise ValueError(f"got {len(images)} images for {len(items)} items; pass one image per item")
    if heatmaps is not None and len(heatmaps) != len(items):
        raise ValueError(f"got {len(heatmaps)} heatmaps for {len(items)} items; pass one per item or None")
    return _save(top_losses_figure(images, items, classes, heatmaps), path)
