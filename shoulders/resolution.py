"""The resolution step: (the user's config, the plan, the backbone, the machine) → the config that runs.

One road per setting, in one direction (user → config → plan → resolved config → strategy / trainer), as timm's
``_resolve_pretrained_source`` decides first as a pure function and acts after:

1. :func:`check_names` — every name in the user's config (strategy, backbone, augmentation preset, head solver,
   precision, bad-image policy) is checked before any data is read, with the valid names and the closest one.
2. :func:`resolve_config` — the only place that fills defaults: each ``None`` (and ``auto``) gets the user's value
   if set, else the plan's, else the strategy's, the backbone's or the machine's. It returns the resolved config,
   with nothing left unset, and the effective :class:`~shoulders.advisor.plan.Plan`: the plan that actually
   trains, whose reasons say which settings the user overrode.

The resolved config is what ``config.json`` records; run again from it (``RunConfig.load``), the resolution has
nothing left to decide and the run repeats.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .config import RunConfig
from .strategies import STRATEGIES, FrozenStrategy
from .train.imbalance import CLASS_WEIGHTS

# Only light modules at the top: the CLI checks a typo in a name before torch is imported.
if TYPE_CHECKING:
    from .advisor.plan import Plan
    from .models import TransferModel
    from .train.distributed import DistContext

DEFAULT_BATCH_SIZE = 64
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BAD_IMAGE_POLICIES = ("skip", "error")
HEAD_INITS = ("default", "probe")  # a fresh head | LP-FT: the linear probe on frozen features


@dataclass(frozen=True)
class BackboneFacts:
    """What the built backbone decides when the user does not."""

    name: str  # the timm name
    image_size: int  # its pretrained input size
    crop_pct: float  # its pretrained centre crop
    num_blocks: int  # coarse blocks above the stem (timm's group_matcher)

    @classmethod
    def of(cls, model: TransferModel, name: str) -> "BackboneFacts":
        """The facts of a built model (``name``: the backbone setting, an alias or a timm name)."""
        from .data import resolve_data_config
        from .models import resolve_backbone_name

        pretrained = resolve_data_config(model)
        return cls(resolve_backbone_name(name), pretrained["input_size"][-1], pretrained["crop_pct"],
                   len(model.blocks()))


@dataclass(frozen=True)
class MachineFacts:
    """What the machine decides: where the run goes and how fast it can be there."""

    device: str  # what device="auto" means here: "cpu" or "cuda" (a launcher picks cuda:LOCAL_RANK)
    native_bf16: bool  # the device computes bf16 natively (CUDA bf16, or AVX512-BF16 / AMX on a CPU)
    num_workers: int  # default data-loader processes for one process of this run

    @classmethod
    def of(cls, ctx: DistContext) -> "MachineFacts":
        """This process's facts (``ctx``: its device, resolved from the setting, and its place under a launcher)."""
        from .data.loader import default_num_workers
        from .train.device import native_bf16

        # the machine's spare cores are shared by the processes running on it
        return cls(ctx.device.type, native_bf16(ctx.device), default_num_workers(ctx.device) // ctx.local_world_size)


def check_names(config: RunConfig) -> None:
    """Fails on any unknown name in ``config`` before data is read or a network built.

    Raises:
        ValueError: naming the parameter (``strategy=``, ``backbone=``, ...), the valid names and the closest one.
    """
    s, d, t = config.strategy, config.data, config.train
    if s.name != "auto" and s.name not in STRATEGIES:
        raise ValueError(f"strategy={s.name!r}: " + STRATEGIES.unknown_message(s.name, ("auto",)))
    _check_choice("head_solver", s.head_solver, FrozenStrategy.head_solvers)
    _check_choice("precision", t.precision, PRECISIONS)
    _check_choice("inference_precision", t.inference_precision, PRECISIONS)
    _check_choice("on_bad_image", d.on_bad_image, BAD_IMAGE_POLICIES)
    _check_choice("head_init", s.head_init, HEAD_INITS)
    if t.max_steps is not None and (isinstance(t.max_steps, bool) or not isinstance(t.max_steps, int)
                                    or t.max_steps < 1):
        raise ValueError(f"max_steps={t.max_steps!r} must be a positive whole number of optimizer steps "
                         "(or None for the plan's)")
    if t.budget is not None:
        from .planner.budget import parse_budget  # torch-free

        parse_budget(t.budget)
    _check_choice("class_weight", t.class_weight, CLASS_WEIGHTS)
    if d.augment is not None:
        from .data import AUGMENTATIONS

        if d.augment not in AUGMENTATIONS:
            raise ValueError(f"augment={d.augment!r}: " + AUGMENTATIONS.unknown_message(d.augment))
    from .models import resolve_backbone_name  # timm's model list: checked last, it is the slowest

    try:
        resolve_backbone_name(config.model.backbone)
    except ValueError as e:
        raise ValueError(f"backbone={config.model.backbone!r}: {e}") from None


def _check_choice(parameter: str, value: str | None, valid: tuple[str, ...]) -> None:
    if value is not None and value not in valid:
        import difflib

        close = difflib.get_close_matches(value, valid, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ValueError(f"{parameter}={value!r} is unknown{hint} valid: {', '.join(valid)}")


def resolve_config(user: RunConfig, plan: Plan | None, backbone: BackboneFacts,
                   machine: MachineFacts, train_labels: Any = None, num_classes: int = 0,
                   native: float | None = None) -> tuple[RunConfig, Plan]:
    """The config that runs, and the plan that goes with it; ``user`` is not modified.

    Args:
        user: the user's settings; ``None`` (and ``auto``) = not set.
        plan: the advisor's plan under strategy ``auto``; ``None`` = the explicit strategy's own defaults.
        backbone: the built backbone's defaults (input size, crop) and its number of blocks.
        machine: the device, its native precisions and its default loader workers.
        train_labels: the training split's labels (of ``num_classes`` classes): ``class_weight='auto'`` turns
            class-balanced loss weights on when they are imbalanced (``shoulders.train.imbalance``).
        native: the training images' median shorter side in pixels, for the centre crop (``shoulders.data.crop``;
            ``None``: the backbone's crop unless the user set one).

    Returns:
        (resolved config, effective plan). The plan's numbers are the resolved config's; its reasons are the
        advisor's (or "chosen by the user") followed by one sentence per setting the user overrode.
    """
    from .advisor.plan import Plan
    from .data.crop import crop_decision
    from .explain.tta_rule import tta_decision

    out = user.copy()
    name, plan, notes = _strategy(user, plan)
    cls = STRATEGIES.get(name)
    s, d, t, m = out.strategy, out.data, out.train, out.model
    s.name, m.backbone = name, backbone.name
    s.trainable_blocks = cls.trainable_block_count(
        _set(user.strategy.trainable_blocks, plan.trainable_blocks, notes, "trainable_blocks"), backbone.num_blocks)
    s.head_epochs = _set(s.head_epochs, plan.head_epochs, notes, "head_epochs")
    s.head_solver = _head_solver(s.head_solver, linear_head=m.head_hidden is None and not m.head_dropout,
                                 frozen=cls.uses_feature_cache)
    t.epochs = _set(t.epochs, plan.epochs, notes, "epochs")
    # the plan's part-epoch belongs to its own epochs: the user's epochs replace both
    t.max_steps = _set(t.max_steps, plan.max_steps if t.epochs == plan.epochs else None, notes, "max_steps")
    t.lr = _set(t.lr, plan.lr, notes, "lr")
    t.backbone_lr_mult = _set(t.backbone_lr_mult, plan.backbone_lr_mult, notes, "backbone_lr_mult")
    t.layer_decay = 1.0 if t.layer_decay is None else t.layer_decay
    t.label_smoothing = _set(t.label_smoothing, plan.label_smoothing, notes, "label_smoothing")
    d.augment = _set(d.augment, plan.augment, notes, "augment")
    d.image_size = _set(d.image_size, plan.image_size, notes, "image_size") or backbone.image_size
    # LP-FT only where fine-tuning follows: the frozen strategy's head is the probe itself
    s.head_init = "default" if cls.uses_feature_cache else _set(s.head_init, plan.head_init, notes, "head_init")
    crop = crop_decision(d.crop_pct, backbone_crop=backbone.crop_pct, backbone_size=backbone.image_size,
                         native=native, fine_tunes=not cls.uses_feature_cache, augment=d.augment)
    d.crop_pct = crop.crop_pct
    _machine_settings(out, machine, fixed_features=cls.uses_feature_cache)
    weighting = _class_weight(t.class_weight, train_labels, num_classes)
    t.class_weight = weighting.mode
    tta = tta_decision(d.hflip)  # the measured rule: on by default only where it paid on the benchmark sets
    reasons = [*plan.reasons, *(r for r in (weighting.reason,) if r), f"centre crop: {crop.reason}",
               f"test-time augmentation: {tta.reason}"]
    effective = Plan(strategy=name, epochs=t.epochs, lr=t.lr, augment=d.augment, trainable_blocks=s.trainable_blocks,
                     head_epochs=s.head_epochs, backbone_lr_mult=t.backbone_lr_mult, class_weight=t.class_weight,
                     reasons=reasons + notes, image_size=d.image_size,
                     head_init=s.head_init, label_smoothing=t.label_smoothing, recipe=plan.recipe,
                     tta=tta.to_dict(), max_steps=t.max_steps)
    return out, effective


def _machine_settings(out: RunConfig, machine: MachineFacts, *, fixed_features: bool) -> None:
    """What the machine decides in ``out`` where the user did not: batch, loader workers, device, precisions."""
    from .train.device import choose_precision

    d, t = out.data, out.train
    d.batch_size = d.batch_size or DEFAULT_BATCH_SIZE
    d.num_workers = machine.num_workers if d.num_workers is None else d.num_workers
    t.device = machine.device if t.device == "auto" else t.device
    precision = choose_precision(t.precision, t.inference_precision, t.device.split(":")[0],
                                 machine.native_bf16, fixed_features=fixed_features)
    t.precision, t.inference_precision = precision.train, precision.inference


def _head_solver(solver: str | None, *, linear_head: bool, frozen: bool) -> str:
    """The user's head solver, else the strategy's (the frozen head's by its shape; fine-tuning: sgd)."""
    solver = solver or (FrozenStrategy.default_head_solver(linear_head) if frozen else "sgd")
    if solver == "lbfgs" and not linear_head:
        raise ValueError("head_solver='lbfgs' needs a linear head; drop head_hidden / head_dropout or use "
                         "head_solver='sgd'")
    return solver


def _class_weight(setting: str, train_labels: Any, num_classes: int) -> Any:
    """``class_weight`` decided from the training labels (``auto``: on from a 3× imbalance), with its reason."""
    from .train.imbalance import ClassWeighting, resolve_class_weight

    if train_labels is None or not num_classes:  # nothing to measure: only an explicit choice can hold
        mode = "none" if setting == "auto" else setting
        return ClassWeighting(mode, None, float("nan"), "")
    return resolve_class_weight(setting, train_labels, num_classes)


def _strategy(user: RunConfig, plan: Plan | None) -> tuple[str, Plan, list[str]]:
    """The strategy that trains, the plan its unset settings come from, and a note when the user's settings
    replaced the advisor's strategy."""
    from .advisor.plan import default_plan

    name = user.strategy.name
    if name == "auto":
        if plan is None:
            raise ValueError("strategy='auto' needs the advisor's plan (shoulders.advise) to be resolved")
        name = plan.strategy
        if user.strategy.trainable_blocks is not None and plan.strategy != "partial":
            # An explicit depth only means something for the partial strategy, so it selects it.
            name, why = "partial", f"trainable_blocks={user.strategy.trainable_blocks:g} set by the user selects"
    else:
        why = f"strategy={name!r} set by the user:"
    if plan is None:
        return name, default_plan(name), []
    if plan.strategy == name:
        return name, plan, []
    # the advisor's numbers belong to its own strategy: the one that trains takes its own defaults
    note = f"{why} strategy {name!r} (the advisor planned {plan.strategy!r}); its settings are {name!r}'s defaults"
    return name, replace(default_plan(name), reasons=list(plan.reasons)), [note]


def _set(value: Any, planned: Any, notes: list[str], parameter: str) -> Any:
    """The user's ``value`` when set (noting where it departs from the plan), else the plan's."""
    if value is None:
        return planned
    if planned is not None and value != planned:
        notes.append(f"{parameter}={value!r} set by the user (the plan: {planned!r})")
    return value
