"""The size-similarity matrix as a picture: a PNG with the dataset placed by its measured coordinates, and the
same 2×2 grid drawn in text for the terminal.

Layout as in the seed's figure: similarity to ImageNet grows to the right, dataset size (images per class, log
scale) upwards; Q1 top-left (large, different), Q2 top-right, Q3 bottom-left, Q4 bottom-right (small, similar).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .plan import QUADRANTS

_CELLS = {1: (0, 0), 2: (0, 1), 3: (1, 0), 4: (1, 1)}  # quadrant → (row from the top, column from the left)
_CELL_WIDTH = 34
_LABEL_WIDTH = 13
_PLAN_TEXT = {1: "full fine-tune", 2: "partial: top blocks", 3: "partial deeper + augment",
              4: "frozen base + head + aug"}


def _x_limits(similarity: float, threshold: float) -> tuple[float, float]:
    """An x range around the threshold that keeps the point visible wherever it lies."""
    values = [threshold] + ([similarity] if math.isfinite(similarity) else [])
    spread = max(0.15, *(abs(v - threshold) * 1.3 for v in values))
    return max(0.0, threshold - spread), min(1.0, threshold + spread)


def save_matrix_png(path: str | Path, *, images_per_class: float, similarity: float, similarity_threshold: float,
                    large_per_class: int, quadrant: int, title: str = "") -> Path:
    """Writes the matrix with the dataset as a point at (similarity, median images per class).

    Args:
        path: the PNG to write (its folder must exist).
        images_per_class: the size coordinate (median images per class).
        similarity: the measured similarity (NaN draws no point, only the quadrant's shading).
        similarity_threshold: where "similar" starts (the vertical line).
        large_per_class: where "large" starts (the horizontal line).
        quadrant: the placed quadrant, shaded.
        title: e.g. the dataset and the backbone.
    """
    fig = Figure(figsize=(6.4, 5.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x0, x1 = _x_limits(similarity, similarity_threshold)
    y0, y1 = 1.0, max(10.0 * large_per_class, 3.0 * images_per_class)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_yscale("log")
    ax.axvline(similarity_threshold, color="0.3", lw=1.2)
    ax.axhline(large_per_class, color="0.3", lw=1.2)
    for number, (row, col) in _CELLS.items():
        left, right = (x0, similarity_threshold) if col == 0 else (similarity_threshold, x1)
        low, high = (large_per_class, y1) if row == 0 else (y0, large_per_class)
        if number == quadrant:
            ax.fill_between([left, right], low, high, color="tab:orange", alpha=0.18, lw=0)
        ax.text((left + right) / 2, math.sqrt(low * high), f"Q{number}\n{_PLAN_TEXT[number]}", ha="center",
                va="center", fontsize=10, color="0.25", weight="bold" if number == quadrant else "normal")
    if math.isfinite(similarity):
        ax.plot([similarity], [images_per_class], "o", ms=11, color="tab:red", mec="black", zorder=5)
        ax.annotate(f"{images_per_class:g}/class, similarity {similarity:.3f}", (similarity, images_per_class),
                    textcoords="offset points", xytext=(8, 10), fontsize=9)
    ax.set_xlabel(f"similarity to ImageNet (measured; similar from {similarity_threshold:.2f})")
    ax.set_ylabel(f"images per class (median; large from {large_per_class})")
    ax.set_title(title or f"size-similarity matrix: quadrant {quadrant}", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png", dpi=100)
    return path


def save_advice_matrix(advice: dict[str, Any], path: str | Path) -> Path:
    """Writes the PNG from an advice as saved (``Advice.to_dict()``, e.g. a run folder's ``advice.json``)."""
    similarity = advice["similarity"]
    return save_matrix_png(path, images_per_class=advice["size"]["median_per_class"],
                           similarity=math.nan if similarity is None else similarity,
                           similarity_threshold=advice["similarity_threshold"],
                           large_per_class=advice["size"]["large_per_class"], quadrant=advice["quadrant"],
                           title=f"{advice['backbone']}: quadrant {advice['quadrant']}")


def advice_matrix_text(advice: dict[str, Any]) -> str:
    """The text matrix from an advice as saved (``Advice.to_dict()``)."""
    similarity = advice["similarity"]
    return matrix_text(images_per_class=advice["size"]["median_per_class"],
                       similarity=math.nan if similarity is None else similarity,
                       similarity_threshold=advice["similarity_threshold"],
                       large_per_class=advice["size"]["large_per_class"], quadrant=advice["quadrant"])


def matrix_text(*, images_per_class: float, similarity: float, similarity_threshold: float, large_per_class: int,
                quadrant: int) -> str:
    """The 2×2 matrix in plain text, the placed quadrant marked with ``>>`` and the dataset's figures."""
    rule = " " * _LABEL_WIDTH + "+" + ("-" * _CELL_WIDTH + "+") * 2
    lines = [f"{'':{_LABEL_WIDTH}}  {'different (< ' + format(similarity_threshold, '.2f') + ')':<{_CELL_WIDTH}}"
             f"{'similar (>= ' + format(similarity_threshold, '.2f') + ')':<{_CELL_WIDTH}}", rule]
    for row, (name, side) in enumerate((("large", f">={large_per_class}"), ("small", f"<{large_per_class}"))):
        numbers = [n for n, (r, _) in sorted(_CELLS.items(), key=lambda kv: kv[1]) if r == row]
        first = "".join(_cell(n, quadrant, f"Q{n} {_PLAN_TEXT[n]}") for n in numbers)
        here = f"{images_per_class:g}/class, sim {similarity:.3f}" if math.isfinite(similarity) else "similarity n/a"
        second = "".join(_cell(n, quadrant, here if n == quadrant else "") for n in numbers)
        lines += [f"{name:<{_LABEL_WIDTH}}|{first}", f"{side + '/class':<{_LABEL_WIDTH}}|{second}", rule]
    q = QUADRANTS[quadrant]
    lines.append(f"placed in Q{quadrant}: {q.summary}")
    return "\n".join(lines)


def _cell(number: int, quadrant: int, text: str) -> str:
    mark = ">> " if number == quadrant and text else "   "
    return f"{mark}{text}"[:_CELL_WIDTH - 1].ljust(_CELL_WIDTH - 1) + " |"
