"""The planner: within a time budget, the recipe (strategy, depth, input size, epochs, head initialisation) with
the highest expected accuracy, from the throughput measured on this machine, the data's measured facts and rules
calibrated in ``benchmarks/`` (README "Planner calibration").

Names are imported on first use (``lazy_loader``): a budget is parsed before torch is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "budget": ["format_duration", "parse_budget"],
    "data_facts": ["DataFacts", "NativeSize", "data_facts", "native_size"],
    "plan_run": ["PlanInputs", "plan_for_run", "recipes_by_budget"],
    "probe": ["measure_throughput"],
    "schedule": ["BudgetKeeper"],
    "search": ["CANDIDATE_SIZES", "DEFAULT_BUDGET", "Candidate", "Constraints", "Estimate", "Recipe", "budget_table",
               "plan_recipe", "predict"],
    "throughput": ["Rates", "Throughput", "ThroughputCache"],
})

if TYPE_CHECKING:
    from shoulders.planner.budget import format_duration, parse_budget
    from shoulders.planner.data_facts import DataFacts, NativeSize, data_facts, native_size
    from shoulders.planner.plan_run import PlanInputs, plan_for_run, recipes_by_budget
    from shoulders.planner.probe import measure_throughput
    from shoulders.planner.schedule import BudgetKeeper
    from shoulders.planner.search import (CANDIDATE_SIZES, DEFAULT_BUDGET, Candidate, Constraints, Estimate, Recipe,
                                          budget_table, plan_recipe, predict)
    from shoulders.planner.throughput import Rates, Throughput, ThroughputCache
