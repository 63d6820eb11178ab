"""The budget planner as the studio uses it: budget → recipe → predicted time → expected accuracy after an advice,
and whether ``shoulders train`` takes ``--budget`` in this version (the planner lands in pieces)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any


def budget_table_available() -> bool:
    """Whether this shoulders has the planner's table (``shoulders.planner.plan_run.recipes_by_budget``)."""
    if importlib.util.find_spec("shoulders.planner") is None:
        return False
    from ..planner import plan_run

    return hasattr(plan_run, "recipes_by_budget")


def train_takes_budget() -> bool:
    """Whether ``shoulders train`` accepts ``--budget`` (asked of its own argument parser)."""
    from ..cli import COMMANDS

    parser = argparse.ArgumentParser(add_help=False)
    COMMANDS["train"][1](parser)
    _, unknown = parser.parse_known_args(["DATA", "--out", "OUT", "--budget", "1m"])
    return not unknown


def budget_table(data: Path, advice: Any, *, weights: str | None, device: str) -> list[dict[str, Any]]:
    """The planner's rows for ``data`` after ``advice`` (an :class:`~shoulders.advisor.Advice`), as
    ``shoulders advise`` prints them: the throughput probe runs the real model a few steps per candidate input size
    (cached per machine)."""
    from ..data import load_data
    from ..planner.plan_run import recipes_by_budget

    return recipes_by_budget(load_data(data), advice, weights=weights, device=device)
