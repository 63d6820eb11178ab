"""Data-parallel training across processes started by a launcher: ``torchrun`` or ``accelerate launch``.

The engine is plain ``torch.distributed`` (DDP). Both launchers start one process per device and set ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them, joins the
process group (NCCL on CUDA, gloo on the CPU) and pins each process to the GPU of its local rank. Without those
variables (a plain ``shoulders`` or ``python`` command) nothing is initialised and every helper here is the
identity, so one code path serves the CPU, one GPU and many.

Sharding conventions, shared by every caller so that results can be put back in order:

- training: :class:`torch.utils.data.DistributedSampler` (a seeded permutation, padded to a multiple of the world
  size, process ``r`` taking positions ``r, r + W, ...``);
- evaluation and feature extraction: :class:`ShardSampler`, the same stride without padding, so no image is
  counted twice; :func:`gather_shards` puts the pieces back in the original order.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator, Sequence, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from .device import resolve_device

# Rank 0 alone writes the run folder, reads the feature cache and fits the frozen strategy's head while the others
# wait; torch's default (10 min for NCCL) would abort a long head fit on a large data set.
PROCESS_GROUP_TIMEOUT = timedelta(minutes=60)

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly one-process) run."""

    rank: int = 0  # global index of this process; 0 writes files and prints
    world_size: int = 1  # processes in the run, over all machines
    local_rank: int = 0  # index on this machine: which GPU this process uses
    local_world_size: int = 1  # processes on this machine: they share its CPU cores for data loading
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def backend(self) -> str | None:
        if not self.distributed:
            return None
        return "nccl" if self.device.type == "cuda" else "gloo"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def context_from_env(device: str = "auto") -> DistContext:
    """The launcher's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (defaults: a single process) and this process's
    device: under a launcher ``cuda`` (or ``auto`` on a GPU machine) means ``cuda:LOCAL_RANK``."""
    world = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    resolved = resolve_device(device)
    if world > 1 and resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", local_rank)
    return DistContext(rank=_env_int("RANK", 0), world_size=world, local_rank=local_rank,
                       local_world_size=_env_int("LOCAL_WORLD_SIZE", 1), device=resolved)


def init_distributed(device: str = "auto") -> DistContext:
    """Joins the launcher's process group once (a no-op for a single process, or when the caller already did).

    Args:
        device: the run's device preference (``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``).

    Returns:
        This process's :class:`DistContext`.

    Raises:
        ValueError: the launcher's world size disagrees with an existing process group.
    """
    ctx = context_from_env(device)
    if not ctx.distributed:
        return ctx
    if ctx.device.type == "cuda":
        torch.cuda.set_device(ctx.device)  # before any collective: NCCL and object collectives use this device
    if not dist.is_initialized():
        dist.init_process_group(ctx.backend, timeout=PROCESS_GROUP_TIMEOUT)
        atexit.register(_shutdown)  # we created the group, so we tear it down; a caller's own group is theirs
    if dist.get_world_size() != ctx.world_size:
        raise ValueError(f"WORLD_SIZE={ctx.world_size} but the existing process group has {dist.get_world_size()} "
                         f"processes; start every process with the same launcher command")
    return ctx


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    """True on the process that writes files and prints (rank 0; also before the group is joined)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return _env_int("RANK", 0) == 0


def barrier() -> None:
    """Waits for every process (nothing to wait for in a single process)."""
    if _active():
        dist.barrier()


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sums of ``values`` over all processes (in float64, so counts stay exact)."""
    if not _active():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every process (pickled; for small values: plans, flags, a head's weights)."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shard_indices(n: int, ctx: DistContext) -> range:
    """This process's positions among ``n`` items: ``rank, rank + W, ...`` (no padding, no duplicates)."""
    return range(ctx.rank, n, ctx.world_size)


class ShardSampler(Sampler[int]):
    """A sequential sampler over this process's :func:`shard_indices`: every item is seen by exactly one process.

    Shards differ in length by at most one item, so it serves evaluation and feature extraction only, never a
    DDP training step (which needs the same number of batches on every process).
    """

    def __init__(self, n: int, ctx: DistContext) -> None:
        self.indices = shard_indices(n, ctx)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def gather_shards(local: np.ndarray | list[Any], total: int) -> np.ndarray | list[Any] | None:
    """Puts the strided shards of ``total`` items back in order on rank 0 (``None`` on the other ranks).

    ``local`` holds this process's items at :func:`shard_indices` (an array, one row per item, or a list).
    """
    if not _active():
        return local
    world = dist.get_world_size()
    parts: list[Any] | None = [None] * world if dist.get_rank() == 0 else None
    dist.gather_object(local, parts, dst=0)
    if parts is None:
        return None
    if isinstance(local, np.ndarray):
        filled = [p for p in parts if len(p)]
        if not filled:
            return np.asarray(local)[:0]
        out = np.empty((total, *filled[0].shape[1:]), dtype=filled[0].dtype)
    else:
        out = [None] * total
    for rank, part in enumerate(parts):
        if len(part):
            out[rank::world] = part
    return out
