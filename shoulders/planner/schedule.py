"""Keeping the budget during training: warm-up + cosine over the planned steps, re-laid when the machine is slower
(or, where the plan allows it, faster) than the plan predicted.

The plan predicts seconds per step; a loaded machine can be slower. Stopping at the deadline would cut the cosine
decay short (the last, most useful low-learning-rate steps). Instead, the keeper watches the measured step time
and, when the remaining steps would end past the deadline, shortens the schedule: from the current learning-rate
factor, a new cosine decays to zero over the steps that still fit. The run then ends on time *and* with its decay
complete. When the steps run clearly faster than predicted (a probe that caught the machine busy) and the user did
not fix the number of epochs, the keeper lengthens the schedule the same way — from the current factor, a new
cosine over the steps that now fit, at most ``max_steps`` — so that the budget the user gave is used.
:class:`BudgetKeeper` is the ``lr_lambda`` of a ``LambdaLR`` (a callable object, so its state rides in
the scheduler's ``state_dict`` and a resumed run continues the same schedule) and wraps the training loader so an
epoch stops at the new last step.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable, Iterable, Iterator

import torch

REPLAN_SLACK = 0.03  # re-plan only when the projected end is this much (of the time left) past the deadline
MIN_MEASURED_STEPS = 3  # steps timed before the first projection (the first steps include kernel selection) ...
# ... or a hundredth of the planned steps, up to RECENT_STEPS, where that is more: a 60-minute run re-planned on its
# first 3 steps (1.68 s each, against 1.2 s from then on) and cut its schedule by 40 % (planner_runs.json,
# 2026-12-02 03:43)
MIN_MEASURED_SHARE = 0.01
EXTEND_SLACK = 0.15  # lengthen only when the projected end is this much (of the time left) before the deadline
EXTEND_AFTER_STEPS = 10  # ... measured over at least this many steps (a longer schedule is a bigger bet)
EXTEND_UNTIL = 0.6  # ... and while at most this share of the schedule has run (enough of the decay is left)
EXTEND_MARGIN = 0.9  # a lengthened schedule aims at this share of the time left
RECENT_STEPS = 20  # the step time is the median of at least this many latest steps ...
# ... and of a tenth of the steps still to run, where that is more: a long run's projection must not follow a
# minute of slow steps (a 60-minute run shortened its schedule by 18 % on 20 steps at 1.5x, 974-981 of 3 011, then
# ran at its old speed and ended 12 minutes early: planner_runs.json, 2026-12-02), while a sustained slowdown still
# shows within a twentieth of the time left
RECENT_SHARE = 0.1
# Lengthen at most twice, the second time only once the recent steps are all later than the last re-plan (and an
# epoch has passed): with a chance after every step the measured step time's noise (±10 %) made schedules grow and
# shrink in turn (up to 15 re-plans in a 2-minute run, planner_runs.json, 2026-12-01 11:09); with one chance only, a
# first lengthening that timed the slow first steps left the rest of the budget unused (Fashion-MNIST 100/class at
# 10 min: 7 min 54 s of a predicted 8 min 58 s, 2026-12-01 16:55).
MAX_LENGTHENINGS = 2


class BudgetKeeper:
    """Learning-rate factor per step and the step at which training ends, re-planned against a deadline.

    Args:
        total_steps: planned optimizer steps.
        warmup_steps: linear warm-up steps at the start.
        deadline: ``clock()`` value by which training (validation included) must end; ``None`` = never re-plan.
        clock: seconds, monotonic (``time.perf_counter``; tests pass a fake one).
        steps_per_epoch: steps between validation passes (their cost is counted in the projection).
        sync: under a launcher, re-plan only after validation and pass the schedule through ``sync`` (rank 0's
            decision broadcast), so every process stops at the same step; ``None`` = re-plan after any step.
        max_steps: the most steps a lengthened schedule may have; ``None`` (or ``total_steps``) = never longer
            than planned (the user fixed the epochs, or there is no budget to fill).
    """

    def __init__(self, total_steps: int, warmup_steps: int = 0, *, deadline: float | None = None,
                 clock: Callable[[], float] = time.perf_counter, steps_per_epoch: int | None = None,
                 sync: Callable[[Any], Any] | None = None, max_steps: int | None = None) -> None:
        self.planned_steps = max(int(total_steps), 1)
        self.total_steps = self.planned_steps
        self.max_steps = max(int(max_steps or 0), self.planned_steps)
        self.warmup_steps = min(max(int(warmup_steps), 0), self.total_steps - 1)
        self.deadline = deadline
        self.clock = clock
        self.steps_per_epoch = steps_per_epoch or self.total_steps
        self.sync = sync
        self.done = 0
        self.replans: list[dict[str, Any]] = []
        self._start_factor, self._start_step = 1.0, self.warmup_steps  # where the current cosine begins
        self._step_seconds: list[float] = []
        self._eval_seconds = 0.0
        self._last: float | None = None

    # -- the schedule ----------------------------------------------------------------------------------------------
    def __call__(self, step: int) -> float:
        """The learning-rate factor at ``step`` (LambdaLR calls this)."""
        if step < self.warmup_steps and self._start_step == self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        span = max(self.total_steps - self._start_step, 1)
        t = min(max(step - self._start_step, 0), span)
        return self._start_factor * 0.5 * (1.0 + math.cos(math.pi * t / span))

    @property
    def finished(self) -> bool:
        return self.done >= self.total_steps

    # -- watching the clock ----------------------------------------------------------------------------------------
    def limit(self, loader: Iterable) -> Iterator:
        """The loader's batches, stopping at the schedule's last step; each batch's step is timed."""
        self._last = self.clock()
        for batch in loader:
            if self.finished:
                return
            yield batch
            self.step_done()

    def step_done(self) -> None:
        now = self.clock()
        if self._last is not None:
            self._step_seconds.append(now - self._last)
        self._last = now
        self.done += 1
        if self.sync is None:
            self._maybe_replan(now)

    def evaluation_done(self, seconds: float) -> None:
        """A validation pass took ``seconds``: the remaining ones are counted in the projection."""
        self._eval_seconds = max(self._eval_seconds, seconds)
        self._last = self.clock()
        if self.sync is not None:
            self._maybe_replan(self._last)
            schedule = self.sync((self.total_steps, self._start_factor, self._start_step))
            self.total_steps, self._start_factor, self._start_step = schedule

    @property
    def epochs(self) -> int:
        """Epochs the current schedule needs (more than planned after lengthening)."""
        return math.ceil(self.total_steps / self.steps_per_epoch)

    def _maybe_replan(self, now: float) -> None:
        measured = min(RECENT_STEPS, max(MIN_MEASURED_STEPS, int(MIN_MEASURED_SHARE * self.planned_steps)))
        if self.deadline is None or len(self._step_seconds) < measured or self.finished:
            return
        remaining = self.total_steps - self.done
        window = max(RECENT_STEPS, int(RECENT_SHARE * remaining))
        per_step = statistics.median_high(self._step_seconds[-window:])  # robust to one slow batch
        evals = math.ceil(remaining / self.steps_per_epoch)
        projected = now + remaining * per_step + evals * self._eval_seconds
        left = self.deadline - now
        if projected - self.deadline > REPLAN_SLACK * max(left, 0.0):
            fit = int(max(left - evals * self._eval_seconds, 0.0) / per_step)
            new_total = self.done + max(fit, 1)
            if new_total < self.total_steps:
                self._relay(new_total, per_step, "shorter")
        elif self._may_extend(projected, left):
            fit = self._steps_that_fit(EXTEND_MARGIN * left, per_step)
            new_total = min(self.done + fit, self.max_steps)
            if new_total > self.total_steps * (1 + EXTEND_SLACK / 3):
                self._relay(new_total, per_step, "longer")

    def _may_extend(self, projected: float, left: float) -> bool:
        return (self.max_steps > self.total_steps and len(self._step_seconds) >= EXTEND_AFTER_STEPS
                and self._may_lengthen_again()
                and self.done >= self.warmup_steps
                and self.done <= EXTEND_UNTIL * self.total_steps
                and self.deadline - projected > EXTEND_SLACK * max(left, 0.0))

    def _may_lengthen_again(self) -> bool:
        """Not yet lengthened; or lengthened fewer than MAX_LENGTHENINGS times and the step time is measured
        entirely after the last re-plan, at least an epoch ago (a re-plan is judged on steps it has not seen)."""
        longer = sum(r.get("direction") == "longer" for r in self.replans)
        if not longer:
            return True
        since = self.done - self.replans[-1]["at_step"]
        return longer < MAX_LENGTHENINGS and since >= max(self.steps_per_epoch, RECENT_STEPS)

    def _steps_that_fit(self, seconds: float, per_step: float) -> int:
        """Steps (and the validation passes between them) that fit in ``seconds``."""
        steps = int(seconds / per_step)
        for _ in range(2):  # the validation passes depend on the steps: settle them in two rounds
            evals = math.ceil(steps / self.steps_per_epoch)
            steps = int(max(seconds - evals * self._eval_seconds, 0.0) / per_step)
        return max(steps, 0)

    def _relay(self, new_total: int, per_step: float, direction: str) -> None:
        """From the current factor, a new cosine to zero over ``new_total`` steps in all. During the warm-up, the
        warm-up keeps its share of the new schedule and the cosine still starts from the full rate: a cosine from
        the warm-up's current factor would run the whole schedule at a fraction of the rate (a re-plan at step 3
        of a 60-minute run, factor 0.005, left Fashion-MNIST 6000/class at 89.9 % instead of 94 %:
        planner_runs.json, 2026-12-02 03:43)."""
        factor = self(self.done)
        self.replans.append({"at_step": self.done, "planned_steps": self.total_steps, "new_steps": new_total,
                             "seconds_per_step": round(per_step, 4), "lr_factor": round(factor, 4),
                             "direction": direction})
        if self.done < self.warmup_steps and self._start_step == self.warmup_steps:
            share = self.warmup_steps / self.total_steps
            self.warmup_steps = min(max(self.done, round(share * new_total)), new_total - 1)
            self._start_factor, self._start_step, self.total_steps = 1.0, self.warmup_steps, new_total
            return
        self._start_factor, self._start_step, self.total_steps = factor, self.done, new_total

    # -- checkpoints -----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k not in ("clock", "sync")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The schedule as it was; the deadline stays this run's (a resumed run has its own budget)."""
        kept = {"clock": self.clock, "sync": self.sync, "deadline": self.deadline}
        self.__dict__.update(state)
        self.__dict__.update(kept)


class BudgetScheduler(torch.optim.lr_scheduler.LambdaLR):
    """A ``LambdaLR`` driven by a :class:`BudgetKeeper`, whose state it carries in its own ``state_dict`` (plain
    numbers, so a checkpoint loads with ``weights_only=True``)."""

    def __init__(self, optimizer: torch.optim.Optimizer, keeper: BudgetKeeper) -> None:
        self.keeper = keeper
        super().__init__(optimizer, lambda step: keeper(step))

    def state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in super().state_dict().items() if k != "keeper"}
        state["budget_keeper"] = self.keeper.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        self.keeper.load_state_dict(state.pop("budget_keeper"))
        super().load_state_dict(state)
