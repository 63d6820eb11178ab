"""The planner's one entry point for a run: the advisor's measurements + this machine's throughput + the budget →
the recipe (what ``TransferClassifier.fit`` hands to the resolution step)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from torch import nn

from ..data import DataSplits
from . import gains
from .data_facts import DataFacts, data_facts
from .probe import measure_throughput
from .search import CANDIDATE_DEPTHS, Constraints, Recipe, budget_table, plan_recipe, useful_sizes
from .throughput import OPTIMISTIC_EXPONENT, Throughput


@dataclass
class PlanInputs:
    """The run's settings the plan depends on (already resolved by the user or the machine)."""

    backbone: str
    device: str
    precision: str
    channels_last: bool
    batch_size: int
    workers: int = 0
    fixed: Constraints = Constraints()


def anchor_error(advice: Any, native: float, train_images: int) -> float:
    """The frozen head's expected error at 64 px on ``train_images`` images, from the advisor's linear probe at
    its measuring size."""
    probe = advice.measurements.get("linear_probe") if hasattr(advice, "measurements") else None
    value = getattr(probe, "value", None)
    if value is None or value != value:  # not measured (NaN): a neutral guess, and the reasons say it is one
        return 0.2
    error = max(1.0 - float(value), 0.005) * gains.probe_to_frozen(train_images)
    return error / gains.resolution_factor(int(advice.image_size or gains.REFERENCE_SIZE), native, "frozen",
                                           similar=gains.is_similar(getattr(advice, "quadrant", 1)))


def device_label(device: str) -> str:
    return "this GPU" if device.startswith("cuda") else "this CPU"


def measure(splits: DataSplits, model: nn.Module, advice: Any, inputs: PlanInputs,
            seed: int = 0) -> tuple[DataFacts, Throughput]:
    """The data's facts and this machine's throughput at every input size the plan will consider."""
    facts = data_facts(splits, quadrant=advice.quadrant, similarity=advice.similarity, seed=seed)
    return facts, _throughput(splits, model, advice, inputs, _candidate_sizes(facts, inputs))


def _candidate_sizes(facts: DataFacts, inputs: PlanInputs) -> list[int]:
    """The user's input size, or the sizes the data makes useful."""
    return [inputs.fixed.image_size] if inputs.fixed.image_size else useful_sizes(facts)[0]


def _throughput(splits: DataSplits, model: nn.Module, advice: Any, inputs: PlanInputs, sizes: Sequence[int],
                cached_only: Sequence[int] = (), loading: bool = True, features_only: Sequence[int] = ()) -> Throughput:
    """The probe at ``sizes`` (features and evaluation only at ``features_only``; the cache's figures at
    ``cached_only``); ``loading``: time the loader too."""
    depths = [inputs.fixed.depth] if inputs.fixed.depth else list(CANDIDATE_DEPTHS)
    return measure_throughput(model, sizes=sizes, depths=depths, batch_size=inputs.batch_size, device=inputs.device,
                              precision=inputs.precision, channels_last=inputs.channels_last,
                              backbone=inputs.backbone, samples=splits.train if loading else None,
                              augment=advice.plan.augment, workers=inputs.workers, cached_only=cached_only,
                              features_only=features_only)


def probe_as_needed(sizes: Sequence[int], measure: Callable[[list[int], list[int], bool], Throughput],
                    plan: Callable[[Throughput, list[int]], Recipe], *,
                    exponent: float | None) -> tuple[Throughput, Recipe]:
    """Probe the smallest of ``sizes`` (and take the cached ones), then only what the search still wants.

    Every size not probed is planned at ``Throughput.optimistic`` (``exponent``: how fast costs at least grow with
    the side), and so is training at a size where only the frozen features were timed. While the search picks
    such a size, or ranks one best, it is probed — its training steps too where that recipe fine-tunes, only its
    features and evaluation where it is the frozen head (a training step at 224 px costs a CPU seconds; photos
    at 2 minutes spent 14-40 s probing sizes whose fine-tuning no plan wanted) — and the search runs again; when
    both are measured, nothing left at its optimistic speed can do better at its true, slower one, so the plan
    equals the one with every size probed, without the probe time a short budget cannot spare (at 2 minutes on 2
    cores, probing 64-160 px took 30-40 s of the 120). ``exponent=None`` (a GPU, where steps take milliseconds)
    probes every size at once. ``measure(train_sizes, feature_sizes, first)`` → their throughput (``first``: also
    what the cache has of the rest); ``plan(tp, sizes)`` → the recipe over ``sizes`` (the probe time
    ``tp.seconds`` counted as spent)."""
    sizes = sorted(set(sizes))
    if exponent is None or len(sizes) == 1:
        tp = measure(sizes, [], True)
        return tp, plan(tp, sizes)
    tp = measure(sizes[:1], [], True)
    while True:
        recipe = plan(tp.optimistic(sizes, exponent), sizes)
        wanted = [(recipe.image_size, recipe.strategy)] + [(a["image_size"], a["strategy"])
                                                           for a in recipe.alternatives[:1]]
        train = sorted({s for s, strategy in wanted if strategy != "frozen" and not tp.trained_at(s)})
        features = sorted({s for s, strategy in wanted if strategy == "frozen" and s not in tp.rates} - set(train))
        if not train and not features:
            break
        tp = tp.merged(measure(train, features, False))
    probed = sorted(tp.rates)
    recipe = plan(tp.optimistic(probed, exponent), probed)
    skipped = [s for s in sizes if s not in tp.rates]
    if skipped:
        recipe.reasons.append(f"{', '.join(map(str, skipped))} px not probed: even at an optimistic speed (cost "
                              f"growing as size^{exponent:g} from {max(s for s in probed if s < skipped[0])} px, "
                              "slower growth than measured on any CPU here) no recipe at them beats this plan")
    untrained = [s for s in probed if not tp.trained_at(s)]
    if untrained:
        recipe.reasons.append(f"{', '.join(map(str, untrained))} px: only the frozen features timed; fine-tuning "
                              "there loses even at an optimistic speed")
    return tp, recipe


def probe_exponent(device: str) -> float | None:
    """The lower bound on cost growth that lets a CPU plan skip probing sizes (``None``: probe every size)."""
    from ..train import resolve_device

    return OPTIMISTIC_EXPONENT if resolve_device(device).type == "cpu" else None


def plan_for_run(splits: DataSplits, model: nn.Module, advice: Any, inputs: PlanInputs, *, budget: float | None,
                 spent: float, seed: int = 0) -> tuple[Recipe, DataFacts, Throughput]:
    """The recipe for this run; ``spent`` (advice so far) and the throughput probe count against ``budget``."""
    facts = data_facts(splits, quadrant=advice.quadrant, similarity=advice.similarity, seed=seed)
    anchor = anchor_error(advice, facts.native.median, facts.train_images)
    sizes = _candidate_sizes(facts, inputs)

    def probe(train: list[int], features: list[int], first: bool) -> Throughput:  # the first also times loading
        rest = [s for s in sizes if s not in train and s not in features] if first else []
        return _throughput(splits, model, advice, inputs, train, cached_only=rest, loading=first,
                           features_only=features)

    def plan(tp: Throughput, considered: list[int]) -> Recipe:
        return plan_recipe(facts, tp, budget=budget, anchor_error=anchor, spent=spent + tp.seconds,
                           batch_size=inputs.batch_size, augment=advice.plan.augment, sizes=considered,
                           device_label=device_label(inputs.device), fixed=inputs.fixed)

    tp, recipe = probe_as_needed(sizes, probe, plan, exponent=probe_exponent(inputs.device))
    return recipe, facts, tp


DEFAULT_TABLE_BUDGETS = (60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


def recipes_by_budget(splits: DataSplits, advice: Any, *, weights: str | None = None, device: str = "auto",
                      batch_size: int = 64, budgets: Sequence[float] = DEFAULT_TABLE_BUDGETS,
                      seed: int = 0) -> list[dict[str, Any]]:
    """``shoulders advise``'s table: budget → planned recipe → predicted time → expected accuracy, for the advised
    backbone on this machine (its throughput probed, or read from the cache)."""
    from ..models import create_transfer_model
    from ..train import resolve_device

    model, _ = create_transfer_model(advice.backbone, len(splits.classes), weights=weights)
    dev = str(resolve_device(device))
    inputs = PlanInputs(backbone=advice.backbone, device=dev, precision="auto", channels_last=True,
                        batch_size=batch_size)
    facts, tp = measure(splits, model, advice, inputs, seed)
    return budget_table(facts, tp, anchor_error=anchor_error(advice, facts.native.median, facts.train_images),
                        spent=advice.seconds + tp.seconds, batch_size=batch_size, augment=advice.plan.augment,
                        budgets=budgets, device_label=device_label(dev))


def table_text(rows: list[dict[str, Any]]) -> str:
    """The budget table for the terminal."""
    lines = [f"{'budget':<10} {'planned recipe':<42} {'predicted':<12} expected acc."]
    lines += [f"{r['budget']:<10} {r['recipe']:<42} {r['predicted']:<12} {100 * r['expected_accuracy']:.1f} %"
              for r in rows]
    return "\n".join(lines + [f"expected accuracy: {gains.expected_note()}; the rows' order is what plans rely on"])


def constraints(user: Any) -> Constraints:
    """What the user's (unresolved) ``RunConfig`` fixes; the planner searches the rest."""
    s, d, t = user.strategy, user.data, user.train
    depth = s.trainable_blocks
    strategy = s.name if s.name != "auto" else ("partial" if depth is not None else None)  # a depth picks partial
    return Constraints(strategy=strategy, image_size=d.image_size, epochs=t.epochs,
                       depth=int(depth) if depth is not None and depth >= 1 and depth == int(depth) else None,
                       head_init=s.head_init)


def planned(advice: Any, user: Any, splits: DataSplits, model: nn.Module, *, budget: float | None, spent: float,
            workers: int = 0) -> Any:
    """The advisor's plan with the planner's recipe in it: strategy, depth, input size, epochs, head init, and the
    prediction (``Plan.recipe``). An explicit strategy keeps its own learning rates; ``auto`` takes the quadrant's."""
    from ..advisor.plan import QUADRANTS, Plan, default_plan

    s, t = user.strategy, user.train
    inputs = PlanInputs(backbone=user.model.backbone, device=t.device, precision=t.precision,
                        channels_last=t.channels_last, batch_size=user.data.batch_size or 64, workers=workers,
                        fixed=constraints(user))
    recipe, facts, tp = plan_for_run(splits, model, advice, inputs, budget=budget, spent=spent, seed=t.seed)
    base = default_plan(recipe.strategy)
    quadrant = QUADRANTS[advice.quadrant]
    mult = quadrant.backbone_lr_mult if s.name == "auto" else base.backbone_lr_mult
    smoothing = quadrant.label_smoothing if s.name == "auto" and recipe.strategy != "frozen" else 0.0
    reasons = list(advice.plan.reasons) + recipe.reasons + [recipe.summary]
    if s.name == "auto" and quadrant.label_smoothing and not smoothing:
        reasons.append("no label smoothing: the frozen head is a convex fit on the features, not a fine-tune")
    return Plan(strategy=recipe.strategy, epochs=recipe.epochs or base.epochs, lr=base.lr, augment=recipe.augment,
                trainable_blocks=recipe.trainable_blocks, head_epochs=0, backbone_lr_mult=mult, reasons=reasons,
                image_size=recipe.image_size, head_init=recipe.head_init, label_smoothing=smoothing,
                max_steps=recipe.steps,
                recipe={**recipe.to_dict(), "native_size": facts.native.to_dict(), "throughput": tp.to_dict()})
