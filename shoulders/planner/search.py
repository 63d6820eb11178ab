"""The recipe search: every (strategy, depth, input size, epochs) the budget allows, the most accurate one chosen.

A pure function of measured values (:class:`DataFacts`, :class:`Throughput`, the advisor's anchor) and the
calibrated rules (``gains``): no model is run here, so the same inputs always give the same recipe, and tests
inject any throughput they like. Each decision comes back as a value with its reasons.

Predicted wall time = the advice and throughput probe already spent + set-up + feature extraction (frozen, or the
linear probe that initialises the head) + training epochs (each with its validation pass) + the test pass.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

from . import gains
from .budget import format_duration
from .data_facts import DataFacts
from .throughput import Throughput

CANDIDATE_SIZES = (64, 96, 112, 160, 224)
CANDIDATE_DEPTHS = (2, 4)
# Every epoch count to 30, then steps of 5 to 100: a coarser grid left up to a third of a budget unused
# (Fashion-MNIST 100/class at 10 min planned 50 epochs when 60 did not fit: 6 min 40 s of 10 min, planner_runs.json)
EPOCH_CHOICES = (*range(1, 31), *range(35, 101, 5))
# Under this many epochs, one epoch is a tenth of the schedule or more: the search also considers the part of an epoch
# that fills the budget (tenths of an epoch; the trainer stops at `train.max_steps`). With whole epochs only, a
# 60-minute run on Fashion-MNIST 6000/class planned 3 epochs (45 min) because 4 did not fit; the budget keeper then
# lengthened the schedule to the hour and the run took 1.30x its prediction (planner_runs.json, 2026-12-02 02:05).
FILL_BELOW_EPOCHS = 10
DEFAULT_BUDGET = 600.0  # without --budget: the plateau recipe, capped at 10 minutes (documented in the README)
PLATEAU_POINTS = 0.3  # without a budget, the cheapest recipe within this many expected points of the best
TIE_POINTS = 0.05  # with a budget, recipes this close in expected accuracy count as equal: the faster one wins
BUDGET_SHARE = 0.95  # plan to end at 95 % of the budget: the trainer's re-planning absorbs the rest
SETUP_SECONDS = 3.0  # building the model, transforms and loaders (measured 2-4 s on the 2-core benchmark machine)
# The torch L-BFGS head with its coarse-to-fine C search (issue 13): 0.2 s + 0.8 ms per training feature row, fitted
# on benchmarks/results/head_solver-full.json (photos 190 rows 0.18 s, fashion-100 800 rows 1.1 s, digits 1 150 rows
# 0.8 s, Fashion-MNIST 48 000 rows 34 s; median of 3 seeds where there are 3)
HEAD_SOLVER_SECONDS = 0.2
HEAD_SOLVER_SECONDS_PER_IMAGE = 0.0008
FROZEN_VIEWS = 4  # augmented views cached per training image when the frozen head trains with augmentation


@dataclass(frozen=True)
class Candidate:
    """One recipe the search considers."""

    strategy: str  # frozen | partial | full
    image_size: int
    epochs: float = 0  # 0 for frozen (the head solver has no epochs); tenths where the schedule fills a budget
    depth: int | None = None  # partial: top blocks that train
    augment: str = "none"
    probe_init: bool = False  # LP-FT: start the new head from the linear probe on frozen features

    @property
    def task(self) -> str:
        return "full" if self.strategy == "full" else f"partial-{self.depth}"

    def label(self) -> str:
        depth = f" top-{self.depth}" if self.strategy == "partial" else ""
        epochs = f", {self.epochs:g} epoch{'s' if self.epochs != 1 else ''}" if self.strategy != "frozen" else ""
        return f"{self.strategy}{depth}, {self.image_size} px{epochs}"


@dataclass
class Estimate:
    """A candidate's predicted wall time (by part) and expected accuracy."""

    candidate: Candidate
    seconds: dict[str, float]
    accuracy: float

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


@dataclass
class Recipe:
    """The planned recipe: what the resolved config takes, the prediction, and why."""

    strategy: str
    image_size: int
    epochs: int  # epochs the schedule touches (the last one may end early: ``steps``)
    trainable_blocks: int | None
    augment: str
    head_init: str  # probe (LP-FT) | default
    warmup_epochs: float
    predicted_seconds: float
    seconds: dict[str, float]
    expected_accuracy: float
    budget_seconds: float | None
    summary: str
    reasons: list[str] = field(default_factory=list)
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    epochs_fixed: bool = False  # the user set the epochs: the trainer may shorten the schedule, never lengthen it
    # a longer schedule of the same recipe would have fitted but was expected to gain too little to be chosen: the
    # plan stopped at the plateau, and the trainer must not lengthen it to fill the budget
    at_plateau: bool = False
    steps: int | None = None  # optimizer steps where the schedule ends within its last epoch (a filled budget)
    label: str = ""  # the recipe in words: ``full, 112 px, 3.8 epochs``

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def predict(c: Candidate, facts: DataFacts, tp: Throughput, *, spent: float) -> dict[str, float]:
    """Seconds per part of the run for candidate ``c``."""
    size = c.image_size
    out = {"advice": spent, "setup": SETUP_SECONDS}
    if c.strategy == "frozen":
        views = FROZEN_VIEWS if c.augment != "none" else 1
        out["features"] = (facts.train_images * views * tp.per_image(size, "features")
                           + (facts.val_images + facts.test_images) * tp.per_image(size, "features", "eval")
                           + _warmup(tp, size, 2))
        out["head"] = HEAD_SOLVER_SECONDS + HEAD_SOLVER_SECONDS_PER_IMAGE * facts.train_images * views
        return out
    if c.probe_init:
        out["features"] = (facts.train_images + facts.val_images) * tp.per_image(size, "features", "eval")
        out["head"] = HEAD_SOLVER_SECONDS + HEAD_SOLVER_SECONDS_PER_IMAGE * facts.train_images
    validation = facts.val_images * tp.per_image(size, "evaluate")  # after every epoch, a part-epoch's too
    # an epoch trains every image once: its last batch holds the remainder, not a full batch (80 images at batch
    # 64 are 80, not 128, images' work: the former count over-predicted Fashion-MNIST 10/class's training by 40 %)
    out["train"] = (c.epochs * facts.train_images * tp.per_image(size, c.task) + math.ceil(c.epochs) * validation
                    + _warmup(tp, size, 3))
    out["evaluate"] = facts.test_images * tp.per_image(size, "evaluate")
    return out


def _warmup(tp: Throughput, size: int, shapes: int) -> float:
    """Kernel selection on each new batch shape (training batch, its remainder, evaluation): the probe's first step."""
    rates, _ = tp.rates_at(size)
    return shapes * rates.warmup_seconds


def _accuracy(c: Candidate, facts: DataFacts, anchor_error: float, batch_size: int) -> float:
    steps_per_epoch = math.ceil(facts.train_images / batch_size)
    error = gains.expected_error(anchor_error=anchor_error, quadrant=facts.quadrant, strategy=c.strategy,
                                 depth=c.depth, size=c.image_size, native=facts.native.median,
                                 steps=c.epochs * steps_per_epoch,
                                 reference_steps=gains.REFERENCE_EPOCHS * steps_per_epoch, probe_init=c.probe_init,
                                 train_images=facts.train_images)
    return max(0.0, 1.0 - min(error, 1.0 - 1.0 / facts.classes))


@dataclass(frozen=True)
class Constraints:
    """What the user fixed: the search only varies the rest (``None`` = free)."""

    strategy: str | None = None  # full | partial | frozen
    image_size: int | None = None
    epochs: int | None = None
    depth: int | None = None  # partial's trainable blocks
    head_init: str | None = None  # default | probe


def candidates(facts: DataFacts, *, sizes: Sequence[int], depths: Sequence[int], augment: str,
               fixed: Constraints = Constraints()) -> list[Candidate]:
    """Frozen at each size, and every fine-tuning strategy × size × epoch count (with and without the probe head),
    restricted to what ``fixed`` says."""
    sizes = [fixed.image_size] if fixed.image_size else list(sizes)
    depths = [fixed.depth] if fixed.depth else list(depths)
    epochs = [fixed.epochs] if fixed.epochs else list(EPOCH_CHOICES)
    probes = [fixed.head_init == "probe"] if fixed.head_init else [False, True]
    out = [Candidate("frozen", s, augment=augment) for s in sizes]
    for s in sizes:
        for strategy, depth in [("full", None)] + [("partial", d) for d in depths]:
            out += [Candidate(strategy, s, e, depth, augment, probe) for e in epochs for probe in probes]
    return [c for c in out if fixed.strategy in (None, c.strategy)]


def useful_sizes(facts: DataFacts, sizes: Sequence[int] = CANDIDATE_SIZES) -> tuple[list[int], str]:
    """Candidate sizes up to the first one past UPSAMPLE_LIMIT × native (larger ones cost more for nothing)."""
    limit = gains.UPSAMPLE_LIMIT.value * facts.native.median
    keep = [s for s in sorted(sizes) if s <= max(limit, min(sizes))]
    bigger = [s for s in sorted(sizes) if s > limit]
    if bigger and bigger[0] not in keep:
        keep.append(bigger[0])  # one step past the limit: the search itself sees that it does not pay
    why = (f"native size {facts.native.median:g} px (10-90 %: {facts.native.p10:g}-{facts.native.p90:g}); "
           f"upsampling past {gains.UPSAMPLE_LIMIT.value:g}x ({limit:.0f} px) adds no information "
           f"(calibration), so sizes {', '.join(map(str, keep))} px are considered")
    return keep, why


def estimate_all(facts: DataFacts, tp: Throughput, *, anchor_error: float, spent: float, batch_size: int,
                 sizes: Sequence[int], depths: Sequence[int], augment: str,
                 fixed: Constraints = Constraints()) -> list[Estimate]:
    """Every candidate with its predicted seconds and expected accuracy."""
    return [Estimate(c, predict(c, facts, tp, spent=spent),
                     _accuracy(c, facts, anchor_error, batch_size))
            for c in candidates(facts, sizes=sizes, depths=depths, augment=augment, fixed=fixed)]


def filling(estimates: list[Estimate], facts: DataFacts, tp: Throughput, *, limit: float, anchor_error: float,
            spent: float, batch_size: int) -> list[Estimate]:
    """For each fine-tuning recipe of ``estimates`` that fits ``limit`` with part of an epoch but not with
    FILL_BELOW_EPOCHS whole ones, the longest schedule in tenths of an epoch that fits."""
    tenths = range(10, 10 * FILL_BELOW_EPOCHS)
    out = []
    for family in {replace(e.candidate, epochs=0) for e in estimates if e.candidate.strategy != "frozen"}:
        fitting = []
        for t in tenths:  # the time grows with the epochs: the fitting ones come first
            c = replace(family, epochs=t / 10)
            seconds = predict(c, facts, tp, spent=spent)
            if sum(seconds.values()) > limit:
                break
            fitting.append((c, seconds))
        if fitting and len(fitting) < len(tenths) and fitting[-1][0].epochs % 1:
            c, seconds = fitting[-1]
            out.append(Estimate(c, seconds, _accuracy(c, facts, anchor_error, batch_size)))
    return out


def choose(estimates: list[Estimate], budget: float | None) -> tuple[Estimate, str]:
    """With a budget: the most accurate estimate that fits (near-ties go to the faster one). Without: the cheapest
    estimate within PLATEAU_POINTS of the best that fits DEFAULT_BUDGET. Returns it and the rule that chose it."""
    limit = (budget if budget is not None else DEFAULT_BUDGET) * BUDGET_SHARE
    fitting = [e for e in estimates if e.total <= limit]
    if not fitting:
        cheapest = min(estimates, key=lambda e: e.total)
        return cheapest, (f"nothing fits {format_duration(limit)}: the cheapest recipe "
                          f"({format_duration(cheapest.total)}) is planned; give a larger budget")
    best = max(e.accuracy for e in fitting)
    margin = TIE_POINTS if budget is not None else PLATEAU_POINTS
    near = [e for e in fitting if e.accuracy >= best - margin / 100]
    pick = min(near, key=lambda e: (e.total, -e.accuracy))
    if budget is not None:
        return pick, (f"the most accurate recipe expected within {BUDGET_SHARE:.0%} of the "
                      f"{format_duration(budget)} budget")
    return pick, (f"no budget: the cheapest recipe within {PLATEAU_POINTS:g} expected points of the best one that "
                  f"fits the default {format_duration(DEFAULT_BUDGET)}, i.e. near the accuracy plateau")


def _best_of(estimates: list[Estimate], limit: float, keep: Any) -> Estimate | None:
    fitting = [e for e in estimates if e.total <= limit and keep(e.candidate)]
    return max(fitting, key=lambda e: (e.accuracy, -e.total)) if fitting else None


def _depth_reason(estimates: list[Estimate], limit: float) -> str:
    """Whether any partial depth beats full fine-tuning at this budget (the measured depth rule)."""
    full = _best_of(estimates, limit, lambda c: c.strategy == "full")
    partial = _best_of(estimates, limit, lambda c: c.strategy == "partial")
    if partial is None or full is None:
        return "depth: only one of full / partial fits the budget"
    if partial.accuracy > full.accuracy:
        return (f"depth: {partial.candidate.label()} beats full at this budget ({100 * partial.accuracy:.1f} vs "
                f"{100 * full.accuracy:.1f} % expected): its cheaper steps buy more epochs")
    return (f"depth: no partial depth beats full fine-tuning at this budget (best partial "
            f"{partial.candidate.label()} {100 * partial.accuracy:.1f} vs full {100 * full.accuracy:.1f} % expected): "
            "on this data a shallower network's cheaper steps do not make up for what it cannot adapt")


def describe(pick: Estimate, tp: Throughput, device_label: str) -> str:
    """``plan: full, 112 px, 24 epochs ≈ 4 min 10 s on this CPU (measured 310 img/s)``."""
    c = pick.candidate
    task = "features" if c.strategy == "frozen" else c.task
    how = {"cache": "cached", "given": "given"}.get(tp.source, "measured")
    if tp.source.startswith("measured (contended"):
        how = "measured on a busy CPU"
    return (f"plan: {c.label()} ≈ {format_duration(pick.total)} on {device_label} "
            f"({how} {tp.images_per_second(c.image_size, task):.0f} img/s)")


def plan_recipe(facts: DataFacts, tp: Throughput, *, budget: float | None, anchor_error: float, spent: float = 0.0,
                batch_size: int = 64, augment: str = "none", sizes: Sequence[int] = CANDIDATE_SIZES,
                depths: Sequence[int] = CANDIDATE_DEPTHS, device_label: str = "this machine",
                fixed: Constraints = Constraints()) -> Recipe:
    """The recipe with the highest expected accuracy within ``budget`` seconds (see :func:`choose`).

    Args:
        facts: the data (sizes, native resolution, quadrant).
        tp: images/second per input size and task.
        budget: seconds for the whole run, advice included; ``None`` = near the plateau, capped at DEFAULT_BUDGET.
        anchor_error: the frozen features' expected error at 64 px (see ``gains.PROBE_TO_FROZEN``).
        spent: seconds already used (advice, throughput probe): they count against the budget.
        batch_size: the training batch.
        augment: the quadrant's augmentation (light for small data).
        fixed: what the user set; only the rest is searched.
    """
    kept, size_reason = useful_sizes(facts, sizes)
    if fixed.image_size:
        size_reason = f"input size {fixed.image_size} px set by the user"
    estimates = estimate_all(facts, tp, anchor_error=anchor_error, spent=spent, batch_size=batch_size,
                             sizes=kept, depths=depths, augment=augment, fixed=fixed)
    limit = (budget if budget is not None else DEFAULT_BUDGET) * BUDGET_SHARE
    if not fixed.epochs:
        estimates += filling(estimates, facts, tp, limit=limit, anchor_error=anchor_error, spent=spent,
                             batch_size=batch_size)
    pick, rule = choose(estimates, budget)
    c = pick.candidate
    reasons = [rule, size_reason, _depth_reason(estimates, limit),
               f"expected test accuracy ≈ {100 * pick.accuracy:.1f} % (calibrated rules; {gains.expected_note()})",
               "predicted " + ", ".join(f"{k} {v:.0f} s" for k, v in pick.seconds.items() if v > 0.5)]
    if c.probe_init:
        reasons.append("head initialised from the linear probe on frozen features (LP-FT)")
    ranked = sorted((e for e in estimates if e.total <= limit), key=lambda e: -e.accuracy)[:5]
    at_plateau = c.strategy != "frozen" and any(
        e.total <= limit and e.candidate.epochs > c.epochs and e.candidate == replace(c, epochs=e.candidate.epochs)
        for e in estimates)
    if at_plateau:
        margin = TIE_POINTS if budget is not None else PLATEAU_POINTS
        reasons.append(f"{c.epochs:g} epochs: longer schedules fit but are expected to gain under {margin:g} points "
                       "(the plateau), so the trainer will not lengthen it to fill the budget")
    steps_per_epoch = math.ceil(facts.train_images / batch_size)
    part_epoch = c.epochs != int(c.epochs)
    if part_epoch:
        reasons.append(f"{c.epochs:g} epochs ({round(c.epochs * steps_per_epoch)} steps): a whole epoch more does "
                       f"not fit, so the schedule ends within its last one")
    return Recipe(strategy=c.strategy, image_size=c.image_size, epochs=math.ceil(c.epochs), trainable_blocks=c.depth,
                  augment=c.augment, head_init="probe" if c.probe_init else "default",
                  warmup_epochs=warmup_epochs(c.epochs), predicted_seconds=round(pick.total, 1),
                  seconds={k: round(v, 1) for k, v in pick.seconds.items()},
                  expected_accuracy=round(pick.accuracy, 4), budget_seconds=budget,
                  summary=describe(pick, tp, device_label), reasons=reasons, epochs_fixed=fixed.epochs is not None,
                  at_plateau=at_plateau, steps=round(c.epochs * steps_per_epoch) if part_epoch else None,
                  label=c.label(),
                  alternatives=[{"recipe": e.candidate.label(), "image_size": e.candidate.image_size,
                                 "strategy": e.candidate.strategy,
                                 "seconds": round(e.total, 1), "expected_accuracy": round(e.accuracy, 4)}
                                for e in ranked])


def warmup_epochs(epochs: int) -> float:
    """Linear warm-up: one epoch, or a fifth of a short schedule (so that a 3-epoch run still mostly decays)."""
    return 1.0 if epochs >= 5 else round(0.2 * epochs, 2)


def budget_table(facts: DataFacts, tp: Throughput, *, anchor_error: float, spent: float, batch_size: int,
                 augment: str, budgets: Sequence[float] = (60, 120, 300, 600, 1800, 3600),
                 device_label: str = "this machine") -> list[dict[str, Any]]:
    """budget → planned recipe → predicted time and expected accuracy, for ``shoulders advise``."""
    rows = []
    for b in budgets:
        r = plan_recipe(facts, tp, budget=b, anchor_error=anchor_error, spent=spent, batch_size=batch_size,
                        augment=augment, device_label=device_label)
        rows.append({"budget": format_duration(b), "recipe": r.label + (", probe head" if r.head_init == "probe" else ""),
                     "predicted": format_duration(r.predicted_seconds), "expected_accuracy": r.expected_accuracy})
    return rows
