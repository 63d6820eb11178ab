"""The fine-tuning road (strategies ``full`` and ``partial``): the strategy's phases, epoch by epoch, with the best
weights kept, early stopping, and a checkpoint after every epoch for ``--resume``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..run_folder import CHECKPOINT_NAME
from ..strategies import Phase
from ..planner.schedule import BudgetKeeper, BudgetScheduler
from .distributed import barrier, broadcast_object
from .frozen import road_features
from .probe_init import init_head_from_probe
from .loop import train_one_epoch, warmup_cosine
from .run import FitResult, RunContext, seed_epoch, whole_split
from .state import TrainingState, history_row, record_epoch


def fit_phases(run: RunContext, resume: bool) -> FitResult:
    """Trains ``run.model`` through its strategy's phases; returns history and metrics (test too, when any)."""
    phases = run.strategy.phases(run.config.train.epochs, len(run.model.blocks()))
    train_loader = run.loader(run.splits.train, run.train_tf, train=True)
    val_loader = run.loader(run.splits.val, run.eval_tf, train=False)
    state = _initial_state(run, resume)
    runtime: dict[str, Any] = {}
    if run.config.strategy.head_init == "probe" and not resume:  # a resumed run's head is in its checkpoint
        runtime["head_init"] = init_head_from_probe(run.model.get_classifier(), lambda s: _probe_features(run, s),
                                                    run.splits.train, run.splits.val, len(run.splits.classes),
                                                    seed=run.config.train.seed)
    keeper = None
    for phase_index, phase in enumerate(phases):
        steps = phase_steps(phases, phase_index, len(train_loader), run.config.train.max_steps)
        if phase_index < state.phase_index or steps == 0:
            continue
        phase_info = run.strategy.apply_phase(run.model, phase)
        if phase_index >= len(state.phases):
            state.phases.append(phase_info)
        net = run.parallel(run.model)  # after apply_phase: DDP registers exactly the parameters that now train
        last = phase_index == len(phases) - 1
        optimizer, scheduler, scaler = _optimizer(run, phase, len(train_loader), steps, budgeted=last)
        keeper = getattr(scheduler, "keeper", None)
        if state.optimizer is not None and phase_index == state.phase_index:
            optimizer.load_state_dict(state.optimizer)
            scheduler.load_state_dict(state.scheduler)
            state.optimizer = state.scheduler = None
        while state.phase_epoch < _epochs(phase, keeper) and not state.stopped and not (keeper and keeper.finished):
            _run_epoch(run, phase, optimizer, scheduler, scaler, train_loader, val_loader, state, net=net,
                       keeper=keeper)
            if run.run_dir is not None:
                if run.dist.is_main:
                    state.phase_index = phase_index
                    state.save(run.run_dir / CHECKPOINT_NAME, run.model, optimizer, scheduler, run.config.to_dict())
                barrier()  # an interruption after this epoch always finds its checkpoint on disk
        state.phase_index, state.phase_epoch = phase_index + 1, 0
    run.model.load_state_dict(state.best_weights)
    metrics = state.metrics()
    test_seconds = _test_metrics(run, metrics)
    if test_seconds is not None:
        runtime["test_seconds"] = round(test_seconds, 2)
    if keeper is not None:
        runtime.update(planned_steps=keeper.planned_steps, steps_run=keeper.done, replans=keeper.replans)
    return FitResult(state.history, metrics, state.phases, runtime)


def _initial_state(run: RunContext, resume: bool) -> TrainingState:
    if not resume:
        return TrainingState()
    if run.run_dir is None:
        raise ValueError("resume=True needs a run folder (out_dir=) holding a checkpoint")
    return TrainingState.resume(run.run_dir / CHECKPOINT_NAME, run.model)


def _epochs(phase: Phase, keeper: BudgetKeeper | None) -> int:
    """The phase's epochs, or more where the budget keeper lengthened its schedule."""
    return phase.epochs if keeper is None else max(phase.epochs, keeper.epochs)


def phase_steps(phases: list[Phase], index: int, steps_per_epoch: int, max_steps: int | None) -> int:
    """Optimizer steps of ``phases[index]``: its epochs', within what ``max_steps`` (all phases together) leaves
    after the phases before it."""
    steps = phases[index].epochs * steps_per_epoch
    if max_steps is None:
        return steps
    return max(0, min(steps, max_steps - sum(p.epochs for p in phases[:index]) * steps_per_epoch))


def _optimizer(run: RunContext, phase: Phase, steps_per_epoch: int, total: int, *,
               budgeted: bool = False) -> tuple[Any, Any, Any]:
    """AdamW over the phase's groups and a per-step warm-up + cosine over ``total`` steps; with a deadline (the
    last phase of a budgeted run), the schedule is a :class:`BudgetKeeper`'s, re-laid over fewer steps when the
    machine is slower; a schedule that ends within an epoch (``max_steps``) is a keeper's without a deadline, whose
    loader stops at the last step."""
    cfg = run.config.train
    groups = run.strategy.param_groups(run.model, cfg.lr, cfg.backbone_lr_mult, cfg.layer_decay, cfg.weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    budgeted = budgeted and run.deadline is not None
    if budgeted or total < phase.epochs * steps_per_epoch:
        sync = broadcast_object if run.dist.distributed else None
        keeper = BudgetKeeper(total, warmup, deadline=run.deadline if budgeted else None,
                              steps_per_epoch=steps_per_epoch, sync=sync,
                              max_steps=round(total * run.stretch) if budgeted else None)
        scheduler: Any = BudgetScheduler(optimizer, keeper)
    else:
        scheduler = warmup_cosine(optimizer, total, warmup)
    scaler = torch.amp.GradScaler(run.device.type) if run.precision.needs_grad_scaler else None
    return optimizer, scheduler, scaler


def _run_epoch(run: RunContext, phase: Phase, optimizer: Any, scheduler: Any, scaler: Any, train_loader: Any,
               val_loader: Any, state: TrainingState, *, net: nn.Module | None = None,
               keeper: BudgetKeeper | None = None) -> None:
    """One epoch: ``net`` (the model, or its DDP wrapper) trains; the model itself is validated. With a budget
    ``keeper`` the epoch ends early at the schedule's last step, and the validation time is counted."""
    cfg = run.config.train
    epoch = state.epoch
    train_loader.sampler.set_epoch(epoch)  # the epoch's permutation, the same on every process
    train_loader.generator.manual_seed(seed_epoch(run, epoch))  # this process's augmentation and worker seeds
    run.strategy.set_train_mode(run.model)
    lr = optimizer.param_groups[0]["lr"]
    batches = keeper.limit(train_loader) if keeper is not None else train_loader
    train = train_one_epoch(net or run.model, run.loss, optimizer, batches, run.device, epoch=epoch,
                            precision=run.precision, scheduler=scheduler, scaler=scaler,
                            channels_last=cfg.channels_last, progress=run.progress, desc=phase.name)
    val = run.evaluate(run.model, val_loader)
    if keeper is not None:
        keeper.evaluation_done(val["seconds"])
    row = history_row(epoch + 1, phase.name, lr, whole_split(train), val)
    record_epoch(state, run.model, row, val, cfg.patience)
    run.report_epoch(state.history)


def _test_metrics(run: RunContext, metrics: dict[str, Any]) -> float | None:
    """Adds the test scores to ``metrics``, when there is a test split; returns the seconds the pass took."""
    if run.splits.test is not None and len(run.splits.test):
        test = run.evaluate(run.model, run.loader(run.splits.test, run.eval_tf, train=False))
        metrics.update(test_accuracy=test["accuracy"], test_loss=test["loss"], test_images=test["images"])
        return float(test["seconds"])
    return None


def _probe_features(run: RunContext, samples: Any) -> tuple[Any, Any]:
    """LP-FT's features: the frozen backbone's pooled output (eval transform, eval mode) of ``samples`` on every
    process, gathered (rank 0 fits the probe; the head is then the same everywhere, from the same features)."""
    out = road_features(run, None, None, samples, 1)
    return broadcast_object(out)
