"""A micro-batcher: items from concurrent requests wait a few milliseconds and share one model forward.

One worker thread owns the model. It takes the first waiting item, collects more until ``max_batch`` items or
``max_wait_s`` have passed, runs the batch function once and hands each caller its own result. The queue is
bounded, so an overloaded server says so (:class:`BatcherFull`) instead of queueing without end.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class BatcherFull(RuntimeError):
    """More items waiting than ``max_queue``: the caller should retry later (HTTP 503)."""


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new items."""


@dataclass
class BatchStats:
    """What the worker has done: batches run, items through them, the largest batch."""

    batches: int = 0
    items: int = 0
    largest: int = 0

    def to_dict(self) -> dict[str, float]:
        mean = self.items / self.batches if self.batches else 0.0
        return {"batches": self.batches, "items": self.items, "largest_batch": self.largest, "mean_batch": mean}


class MicroBatcher(Generic[T, R]):
    """Runs ``batch_fn`` on batches of items submitted from any thread or event loop.

    Args:
        batch_fn: items → one result per item, in order (e.g. preprocessed images → prediction rows).
        max_batch: items per call of ``batch_fn``, at most.
        max_wait_s: how long the first item of a batch waits for company.
        max_queue: items waiting, at most; beyond it :meth:`submit` raises :class:`BatcherFull`.
    """

    def __init__(self, batch_fn: Callable[[list[T]], Sequence[R]], *, max_batch: int = 32,
                 max_wait_s: float = 0.005, max_queue: int = 1024) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch= must be at least 1, got {max_batch}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s= must be 0 or more seconds, got {max_wait_s}")
        if max_queue < max_batch:
            raise ValueError(f"max_queue= ({max_queue}) must be at least max_batch= ({max_batch})")
        self.batch_fn, self.max_batch, self.max_wait_s, self.max_queue = batch_fn, max_batch, max_wait_s, max_queue
        self.stats = BatchStats()
        self._queue: queue.Queue[tuple[T, Future] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="shoulders-batcher", daemon=True)
        self._thread.start()

    def submit(self, items: Sequence[T]) -> list[Future]:
        """Queues ``items``; each future gets its item's result (or the exception ``batch_fn`` raised)."""
        with self._lock:
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            if self._queue.qsize() + len(items) > self.max_queue:
                raise BatcherFull(f"{self._queue.qsize()} images are already waiting (limit {self.max_queue}); "
                                  "retry shortly")
            futures: list[Future] = []
            for item in items:
                future: Future = Future()
                self._queue.put((item, future))
                futures.append(future)
        return futures

    async def run(self, items: Sequence[T]) -> list[R]:
        """``submit`` from an event loop and await every result, in order."""
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in self.submit(items))))

    def close(self, timeout: float | None = None) -> None:
        """Takes no new items, lets the worker finish every queued one, then stops it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)  # after every queued item: the worker drains the queue first
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _collect(self, first: tuple[T, Future]) -> tuple[list[tuple[T, Future]], bool]:
        """The first item plus whatever arrives within the wait window; also whether the stop mark came."""
        batch, deadline = [first], time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                entry = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0)) \
                    if time.monotonic() < deadline else self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is None:
                return batch, True
            batch.append(entry)
        return batch, False

    def _work(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._collect(first)
            self._run(batch)

    def _run(self, batch: list[tuple[T, Future]]) -> None:
        live = [(item, f) for item, f in batch if f.set_running_or_notify_cancel()]  # callers that gave up: skipped
        if not live:
            return
        try:
            results = self.batch_fn([item for item, _ in live])
        except Exception as e:  # noqa: BLE001 - handed to every caller of the batch; the worker lives on
            for _, f in live:
                f.set_exception(e)
            return
        self.stats.batches += 1
        self.stats.items += len(live)
        self.stats.largest = max(self.stats.largest, len(live))
        for (_, f), result in zip(live, results):
            f.set_result(result)
