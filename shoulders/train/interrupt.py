"""Interruptions: Ctrl-C and SIGTERM stop a training between two statements, never inside a file write.

While :func:`interruptible` is active (in the main thread), SIGTERM raises :class:`TrainingInterrupted` like
Ctrl-C raises ``KeyboardInterrupt``, so the training unwinds through the same ``finally`` blocks: the checkpoint
of the last finished epoch stays as it was (every run-folder write is a temporary file and a rename, and an
interrupted write removes its temporary file), the run folder's lock is released, and the caller can say how to
resume. Exit status, by convention: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


class TrainingInterrupted(KeyboardInterrupt):
    """A training stopped by a signal. ``signal``: its number; ``exit_code``: 128 + it."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signal = int(signum)
        self.exit_code = 128 + int(signum)


def exit_code(error: KeyboardInterrupt) -> int:
    """130 for Ctrl-C (a plain ``KeyboardInterrupt``), 128 + N for a :class:`TrainingInterrupted` by signal N."""
    return getattr(error, "exit_code", 128 + signal.SIGINT)


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`TrainingInterrupted` inside the block (main thread only; elsewhere, and
    where the signals cannot be set, the block runs with the handlers it has)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise TrainingInterrupted(signum)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # not settable here
            pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
