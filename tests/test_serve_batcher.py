"""MicroBatcher: batches up to max_batch within the window, results in order, errors to the callers, bounded."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from shoulders.serve.batcher import BatcherClosed, BatcherFull, MicroBatcher


def test_items_submitted_together_share_batches_of_at_most_max_batch() -> None:
    sizes: list[int] = []

    def double(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return [2 * i for i in items]

    batcher = MicroBatcher(double, max_batch=4, max_wait_s=0.2)
    futures = batcher.submit(list(range(10)))
    assert [f.result(timeout=5) for f in futures] == [2 * i for i in range(10)]
    assert sizes == [4, 4, 2]
    assert batcher.stats.to_dict() == {"batches": 3, "items": 10, "largest_batch": 4, "mean_batch": 10 / 3}
    batcher.close()


def test_concurrent_callers_are_batched_and_each_gets_its_own_result() -> None:
    sizes: list[int] = []
    batcher = MicroBatcher(lambda items: sizes.append(len(items)) or [i + 100 for i in items], max_batch=32,
                           max_wait_s=0.3)
    results: dict[int, int] = {}

    def call(i: int) -> None:
        results[i] = batcher.submit([i])[0].result(timeout=5)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: i + 100 for i in range(8)}
    assert sum(sizes) == 8 and len(sizes) < 8  # at least two callers shared a forward
    batcher.close()


def test_async_run_and_a_failing_batch_does_not_kill_the_worker() -> None:
    def fn(items: list[int]) -> list[int]:
        if any(i < 0 for i in items):
            raise ValueError("negative")
        return items

    batcher = MicroBatcher(fn, max_batch=2, max_wait_s=0.0)
    with pytest.raises(ValueError, match="negative"):
        asyncio.run(batcher.run([-1]))
    assert asyncio.run(batcher.run([1, 2, 3])) == [1, 2, 3]
    assert batcher.alive
    batcher.close()


def test_queue_is_bounded_and_close_drains_then_refuses() -> None:
    gate = threading.Event()
    batcher = MicroBatcher(lambda items: gate.wait(5) and items, max_batch=2, max_wait_s=0.0, max_queue=4)
    first = batcher.submit([1])  # the worker takes it and blocks on the gate
    time.sleep(0.1)
    queued = batcher.submit([2, 3, 4, 5])
    with pytest.raises(BatcherFull, match="limit 4"):
        batcher.submit([6])
    gate.set()
    batcher.close(timeout=5)
    assert [f.result(timeout=1) for f in first + queued] == [1, 2, 3, 4, 5]
    assert not batcher.alive
    with pytest.raises(BatcherClosed):
        batcher.submit([7])


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch= must be at least 1"):
        MicroBatcher(lambda x: x, max_batch=0)
    with pytest.raises(ValueError, match="max_queue="):
        MicroBatcher(lambda x: x, max_batch=8, max_queue=4)
