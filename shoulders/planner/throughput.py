"""How fast this machine runs the real model: a few timed steps per candidate resolution, cached per machine.

The planner predicts a run's duration from images/second measured here, not from a table: a training step of the
full network and of each partial depth, the frozen strategy's feature extraction, and evaluation, at the candidate
input sizes the search needs (``plan_run.probe_as_needed``). The figures are cached in the user cache directory,
keyed by everything that changes them (CPU model and cores or GPU name, torch version, backbone, device,
precision, channels_last, batch size), so the second plan on a machine costs nothing. :class:`Throughput` is a
plain value: tests and callers that know their speeds build one directly instead of measuring.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from shoulders.run_folder import save_json

WARMUP_STEPS = 1  # the first step allocates buffers and picks kernels: not timed
TIMED_STEPS = 2  # enough on a quiet machine (step-to-step spread ~5 %); the plan adds a margin on top
CACHE_NAME = "throughput.json"
# A CPU measurement during which this process got less than this share of its threads' time (other jobs held the
# cores) is used for the plan at hand but not cached: a contended figure must not make every later plan a slow one
# (seen here: a probe taken beside a test run planned the frozen strategy for every later digits run, 11 points
# below the fine-tuned recipe a quiet probe planned).
CONTENDED_SHARE = 0.7
JUDGED_AFTER = 0.05  # seconds: a shorter measurement is too short for its CPU share to say anything
# How fast a CPU's cost per image at least grows with the input side, for sizes not probed yet: from 64 px on the
# 2-core benchmark machine (Lite0, batch 64; ln cost ratio / ln side ratio) the exponent is 1.22-1.79 over full and
# partial training steps, features and evaluation at 96-160 px (the probe cache) and 1.32-1.55 at 112 px over fp32,
# bf16 and channels_last (results/throughput-full.json); it grows with the size as per-step overheads stop mattering.
# An unprobed size is planned as if its cost grew only linearly: no slower than it can be (see probe_as_needed).
OPTIMISTIC_EXPONENT = 1.0


@dataclass
class Rates:
    """Images per second at one input size. ``train`` is keyed ``"full"`` or ``"partial-<k>"`` (top k blocks); empty
    where only the frozen strategy's features and evaluation were timed (a size the search wants only frozen)."""

    size: int
    train: dict[str, float]
    features: float  # the frozen strategy's feature extraction (its inference precision)
    evaluate: float  # validation and test passes of a fine-tuned model
    warmup_seconds: float = 0.0  # the first step of a new batch shape beyond a timed one (kernel selection)


@dataclass
class Throughput:
    """Measured (or given) speeds per input size, and where they came from.

    Attributes:
        rates: per input size.
        load_seconds: decoding + transforming one image in the loader (added per image when the loader has no
            worker processes, overlapped otherwise), where ``loading`` has no figure.
        loading: per input size, ``{"train": s, "eval": s}``: the same with the training transform (augmentation
            included) and with the evaluation transform, measured at that size (resizing a 28 px image to 224 px
            costs several times what 64 px does; a frozen run's test pass uses the cheaper evaluation transform).
        workers: the loader's worker processes.
        identity: what the figures are valid for (machine, torch, backbone, device, precision, layout, batch).
        seconds: what measuring them cost now (0 when they came from the cache).
        source: ``measured`` | ``cache`` | ``given`` (``measured (contended, …)`` with what ``contended`` lists).
    """

    rates: dict[int, Rates]
    load_seconds: float = 0.0
    workers: int = 0
    loading: dict[int, dict[str, float]] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    source: str = "given"
    contended: list[str] = field(default_factory=list)  # the sizes measured on a busy CPU (not cached)

    def rates_at(self, size: int, trained: bool = False) -> tuple[Rates, float]:
        """The rates at ``size``, or at the nearest measured size scaled by pixel count (and that scale);
        ``trained``: only among the sizes whose training steps were timed."""
        sizes = [s for s, r in self.rates.items() if r.train or not trained]
        if size in sizes:
            return self.rates[size], 1.0
        if not sizes:
            raise ValueError("no training step timed: probe at least one input size with training" if trained
                             else "no throughput measured: give at least one input size")
        near = min(sizes, key=lambda s: abs(s - size))
        return self.rates[near], (near / size) ** 2

    def per_image(self, size: int, task: str, transform: str | None = None) -> float:
        """Seconds per image for ``task`` (``full``, ``partial-<k>``, ``features``, ``evaluate``), loading included:
        through the ``transform`` ``"train"`` or ``"eval"`` (default: ``eval`` for ``evaluate``, else ``train``)."""
        rates, scale = self.rates_at(size)
        if task == "features":
            ips = rates.features
        elif task == "evaluate":
            ips = rates.evaluate
        else:
            if not rates.train:  # only the features were timed here: the nearest size whose training was
                rates, scale = self.rates_at(size, trained=True)
            ips = rates.train.get(task) or rates.train["full"]
        model = 1.0 / (ips * scale)
        load = self.load_at(size, transform or ("eval" if task == "evaluate" else "train"))
        return model + load if self.workers == 0 else max(model, load / self.workers)

    def trained_at(self, size: int) -> bool:
        return size in self.rates and bool(self.rates[size].train)

    def load_at(self, size: int, transform: str) -> float:
        """Loader seconds per image at ``size`` (the nearest measured size) through ``transform``."""
        if not self.loading:
            return self.load_seconds
        near = min(self.loading, key=lambda s: abs(s - size))
        return self.loading[near].get(transform, self.load_seconds)

    def images_per_second(self, size: int, task: str) -> float:
        return 1.0 / self.per_image(size, task)

    def optimistic(self, sizes: Sequence[int], exponent: float) -> "Throughput":
        """A copy with rates at each of ``sizes`` not measured: the nearest smaller measured size's, scaled by
        (smaller / size) ** ``exponent`` — no slower than the size can be where costs grow at least that fast."""
        rates = dict(self.rates)
        for size in sizes:
            below = [s for s in self.rates if s < size]
            trained = [s for s in below if self.rates[s].train]
            if self.trained_at(size) or not below:
                continue
            base = self.rates[max(below)]
            f = (base.size / size) ** exponent
            train = {}
            if trained:  # training from the nearest smaller size whose training was timed
                t = self.rates[max(trained)]
                train = {k: v * (t.size / size) ** exponent for k, v in t.train.items()}
            measured = self.rates.get(size)  # features timed here: those stay as measured
            rates[size] = replace(measured, train=train) if measured else Rates(
                size, train, base.features * f, base.evaluate * f, base.warmup_seconds)
        return replace(self, rates=rates)

    def merged(self, other: "Throughput") -> "Throughput":
        """These rates and ``other``'s (a later probe of more sizes, or of training where only features were
        timed); loading from whichever has it."""
        contended = self.contended + other.contended
        measured = any(s.source.startswith("measured") for s in (self, other))
        rates = {**self.rates, **{s: r for s, r in other.rates.items() if r.train or not self.trained_at(s)}}
        return replace(self, rates=rates, loading=self.loading or other.loading,
                       seconds=round(self.seconds + other.seconds, 2), contended=contended,
                       source=_source(measured, contended) if measured else self.source)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rates": {str(k): asdict(v) for k, v in self.rates.items()},
                "loading": {str(k): v for k, v in self.loading.items()}}


def machine_identity(device: torch.device) -> dict[str, Any]:
    """CPU model and cores (or the GPU's name) and torch's version: what makes one machine's figures another's."""
    if device.type == "cuda":
        return {"gpu": torch.cuda.get_device_name(device), "torch": torch.__version__}
    cpu = platform.processor()
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__}


# -- measuring ----------------------------------------------------------------------------------------------------
def _timed_train(model: nn.Module, set_trainable: Callable[[nn.Module], None], size: int, batch: int,
                 device: torch.device, precision: Any, channels_last: bool, classes: int) -> tuple[float, float]:
    """(Images/s, warm-up extra seconds) of forward + backward + AdamW step with the given parameters trainable."""
    set_trainable(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-6)
    x, y = _batch(batch, size, classes, device, channels_last)
    criterion = nn.CrossEntropyLoss()
    times = []
    for _ in range(WARMUP_STEPS + TIMED_STEPS):
        start = time.perf_counter()
        with precision.autocast(device):
            loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return _rate(batch, times)


@torch.inference_mode()
def _timed_inference(module: nn.Module, size: int, batch: int, device: torch.device, autocast: Any,
                     channels_last: bool) -> tuple[float, float]:
    module.eval()
    x, _ = _batch(batch, size, 1, device, channels_last)
    times = []
    for _ in range(WARMUP_STEPS + TIMED_STEPS):
        start = time.perf_counter()
        with autocast():
            module(x)
        _sync(device)
        times.append(time.perf_counter() - start)
    return _rate(batch, times)


def _rate(batch: int, times: list[float]) -> tuple[float, float]:
    """(images/s over the timed steps, extra seconds of the warm-up steps beyond a timed one)."""
    timed = times[WARMUP_STEPS:]
    step = sum(timed) / len(timed)
    return batch / step, max(0.0, sum(times[:WARMUP_STEPS]) - WARMUP_STEPS * step)


def _batch(batch: int, size: int, classes: int, device: torch.device,
           channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=generator).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, classes, (batch,), generator=generator).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_rates(model: nn.Module, size: int, *, depths: Sequence[int], batch: int, device: torch.device,
                  train_precision: Any, feature_precision: Any, channels_last: bool,
                  trainable: Callable[[nn.Module, int | None], None], training: bool = True) -> Rates:
    """Times the real model (a copy: the caller's weights never change) at ``size``.

    Args:
        model: the ``TransferModel`` (``.backbone`` and ``.head``).
        depths: partial depths to time (top k blocks); full is always timed.
        trainable: ``trainable(model, k)`` sets ``requires_grad`` and BatchNorm modes for the top ``k`` blocks
            (``None`` = the full network), as the strategy will during training.
        training: also time the training steps; ``False``: features and evaluation only (``train`` is empty, and
            the warm-up is the feature extractor's).
    """
    probe = copy.deepcopy(model).to(device)
    if channels_last:
        probe.to(memory_format=torch.channels_last)
    classes = int(getattr(probe.head, "out_features", 2) or 2)
    train, warmup = {}, None
    if training:
        train["full"], warmup = _timed_train(probe, lambda m: trainable(m, None), size, batch, device,
                                             train_precision, channels_last, classes)
        for k in depths:
            train[f"partial-{k}"], _ = _timed_train(probe, lambda m, k=k: trainable(m, k), size, batch, device,
                                                    train_precision, channels_last, classes)
    features, feature_warmup = _timed_inference(probe.backbone, size, batch, device,
                                                lambda: feature_precision.autocast(device, inference=True),
                                                channels_last)
    warmup = feature_warmup if warmup is None else warmup
    evaluate, _ = _timed_inference(probe, size, batch, device,
                                   lambda: train_precision.autocast(device, inference=True), channels_last)
    return Rates(size, {k: round(v, 2) for k, v in train.items()}, round(features, 2), round(evaluate, 2),
                 round(warmup, 3))


# -- the cache ----------------------------------------------------------------------------------------------------
class ThroughputCache:
    """One JSON file of :class:`Rates`, keyed by identity and input size."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.path = Path(directory) / CACHE_NAME

    @staticmethod
    def key(identity: dict[str, Any], size: int) -> str:
        return json.dumps({**identity, "size": size}, sort_keys=True)

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # missing or damaged: measure again (the cache only saves time)

    def get(self, identity: dict[str, Any], size: int, depths: Sequence[int], training: bool = True) -> Rates | None:
        """The cached rates at ``size``; ``None`` where there are none, or where ``training`` is wanted and the
        entry has no training steps (or not every depth of ``depths``)."""
        entry = self._read().get(self.key(identity, size))
        if not entry or (training and (not entry["train"]
                                       or any(f"partial-{k}" not in entry["train"] for k in depths))):
            return None
        return Rates(**entry)

    def put(self, identity: dict[str, Any], rates: Rates) -> None:
        data = self._read()
        old = data.get(self.key(identity, rates.size))
        if not rates.train and old and old["train"]:
            return  # features-only figures never replace an entry that has the training steps too
        data[self.key(identity, rates.size)] = asdict(rates)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        save_json(data, self.path)


def cpu_share(measure: Callable[[int], Rates], size: int, threads: int) -> tuple[Rates, float]:
    """``measure(size)`` and the share of ``threads`` cores this process used meanwhile (CPU time / wall time;
    1.0 when the measurement was too short to judge)."""
    wall, cpu = time.perf_counter(), time.process_time()
    rates = measure(size)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return rates, (cpu / (wall * max(threads, 1)) if wall >= JUDGED_AFTER else 1.0)


def probe_throughput(model: nn.Module, sizes: Sequence[int], *, identity: dict[str, Any], cache: ThroughputCache | None,
                     measure: Callable[..., Rates], load_seconds: float = 0.0, workers: int = 0,
                     cached_only: Sequence[int] = (), features_only: Sequence[int] = ()) -> Throughput:
    """Rates at every size in ``sizes``, from the cache where present, else from ``measure(size)`` — then cached,
    unless the CPU was contended while it ran (see ``CONTENDED_SHARE``; the Throughput's source says so) — and at
    those of ``cached_only`` that the cache has (free). At ``features_only`` sizes (also probed) only the features
    and evaluation are wanted: a cached entry of any kind serves, else ``measure(size, False)`` times just those."""
    start = time.perf_counter()
    depths = identity.get("depths", [])
    rates, measured, contended = {}, False, []
    light = set(features_only) - set(sizes)
    for size in sorted(set(cached_only) - set(sizes) - light) if cache else []:
        found = cache.get(identity, size, depths, training=False)
        if found is not None:
            rates[size] = found
    for size in sorted(set(sizes) | light):
        training = size not in light
        found = cache.get(identity, size, depths, training=training) if cache else None
        if found is None:
            measured = True
            timed = measure if training else (lambda s: measure(s, False))
            if "cpu" in identity:  # on a GPU the host thread waits on the device: its CPU time says nothing
                found, share = cpu_share(timed, size, int(identity.get("threads", 1)))
            else:
                found, share = timed(size), 1.0
            if share < CONTENDED_SHARE:
                contended.append(f"{size} px: {share:.0%} of {identity.get('threads', 1)} threads")
            elif cache:
                cache.put(identity, found)
        rates[size] = found
    seconds = round(time.perf_counter() - start, 2) if measured else 0.0
    return Throughput(rates, load_seconds, workers, identity=identity, seconds=seconds,
                      source=_source(measured, contended), contended=contended)


def _source(measured: bool, contended: list[str]) -> str:
    if contended:
        return "measured (contended, not cached: " + "; ".join(contended) + ")"
    return "measured" if measured else "cache"
