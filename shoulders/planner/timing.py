"""The budget's two ends: the deadline the trainer keeps, and predicted against actual time, printed and recorded."""

from __future__ import annotations

import sys
import time
from typing import Any

from .budget import format_duration
from .gains import REFERENCE_SIZE
from .search import DEFAULT_BUDGET

SAVE_RESERVE = 2.0  # seconds kept for writing the run folder after the test pass

__all__ = ["MAX_STRETCH", "REFERENCE_SIZE", "deadline", "say", "stretch", "timing"]

# A budgeted run whose steps turn out faster than the probe measured may lengthen its schedule up to this factor
# (Fashion-MNIST 100/class at 2 min: probes in one process measured 126-200 img/s for the same steps, and the
# slow ones left a third of the budget unused).
MAX_STRETCH = 2.0


def deadline(start: float, recipe: dict[str, Any] | None) -> float | None:
    """``time.perf_counter()`` value by which training (validation included) must end: the budget (or, without
    one, the default cap) from ``start``, less the predicted test pass and the time to save. ``None``: no plan."""
    if not recipe:
        return None
    budget = recipe.get("budget_seconds") or DEFAULT_BUDGET
    return start + budget - recipe["seconds"].get("evaluate", 0.0) - SAVE_RESERVE


def stretch(recipe: dict[str, Any] | None) -> float:
    """How much longer than planned the schedule may grow: MAX_STRETCH under a budget whose epochs the planner
    chose to fill it; 1 when the user fixed the epochs, gave no budget, or the plan stopped at its plateau with time
    to spare (lengthening it spent up to 1.4x the predicted time for no expected gain: Fashion-MNIST 100/class,
    full@64 at 10 min, planner_runs.json 2026-12-01 22:23)."""
    if not recipe or not recipe.get("budget_seconds") or recipe.get("epochs_fixed", True) \
            or recipe.get("at_plateau"):
        return 1.0
    return MAX_STRETCH


def timing(start: float, recipe: dict[str, Any] | None, replans: list[dict[str, Any]] | None = None,
           history: list[dict[str, Any]] | None = None, test_seconds: float | None = None) -> dict[str, Any]:
    """Actual seconds since ``start`` beside the prediction and the budget (for config.json and the terminal); where
    the budget keeper re-planned (``replans``, the trainer's record), the line says from how many steps to how many,
    since the prediction is the plan's, made before training. A fine-tuning run's ``history`` (seconds per epoch,
    validation included) and ``test_seconds`` give the actual parts beside the predicted ones (``actual_parts``:
    advice, train, evaluate, and the rest as setup)."""
    actual = round(time.perf_counter() - start, 1)
    if not recipe:
        return {"actual_seconds": actual, "line": f"took {format_duration(actual)}"}
    parts = None
    if history and test_seconds is not None:
        parts = {"advice": recipe["seconds"].get("advice", 0.0),  # measured, not predicted: it ran before the plan
                 "train": round(sum(h.get("seconds", 0.0) for h in history), 1), "evaluate": round(test_seconds, 1)}
        parts["setup"] = round(actual - sum(parts.values()), 1)
        if parts["setup"] < 0:  # a resumed run: its history holds epochs an earlier process trained
            parts = None
    predicted, budget = recipe["predicted_seconds"], recipe.get("budget_seconds")
    limit = f", budget {format_duration(budget)}" if budget else ""
    kept = ""
    if replans:
        first, last = replans[0], replans[-1]
        kept = (f"; the budget keeper re-planned {first['planned_steps']} steps to {last['new_steps']} as the steps "
                f"ran {'faster' if last['new_steps'] > first['planned_steps'] else 'slower'} than the probe measured")
    return {"actual_seconds": actual, "predicted_seconds": predicted, "budget_seconds": budget,
            "predicted_parts": recipe["seconds"], **({"actual_parts": parts} if parts else {}),
            "ratio": round(actual / predicted, 3) if predicted else None,
            "line": f"took {format_duration(actual)} (predicted {format_duration(predicted)}{limit}){kept}"}


def say(config: Any, line: str | None) -> None:
    """One line on stderr when the run shows progress (the plan before training, the time after)."""
    if line and config.train.progress:
        from ..train.distributed import is_main

        if is_main():
            print(line, file=sys.stderr, flush=True)
