"""The planner: within a time budget, the recipe (strategy, depth, input size, epochs, head initialisation) with
the highest expected accuracy, from the throughput measured on this machine, the data's measured facts and rules
calibrated in ``benchmarks/`` (README "Planner calibration")."""

from shoulders.planner.budget import format_duration, parse_budget
from shoulders.planner.data_facts import DataFacts, NativeSize, data_facts, native_size
from shoulders.planner.probe import measure_throughput
from shoulders.planner.search import (
    CANDIDATE_SIZES,
    DEFAULT_BUDGET,
    Candidate,
    Estimate,
    Recipe,
    budget_table,
    plan_recipe,
    predict,
)
from shoulders.planner.throughput import Rates, Throughput, ThroughputCache

__all__ = [
    "CANDIDATE_SIZES",
    "Candidate",
    "DEFAULT_BUDGET",
    "DataFacts",
    "Estimate",
    "NativeSize",
    "Rates",
    "Recipe",
    "Throughput",
    "ThroughputCache",
    "budget_table",
    "data_facts",
    "format_duration",
    "measure_throughput",
    "native_size",
    "parse_budget",
    "plan_recipe",
    "predict",
]
