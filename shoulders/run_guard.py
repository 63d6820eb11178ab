"""Run-folder safety: an existing run is never silently replaced, and two trainings never share a folder.

- :func:`plan_out_dir` decides, before any data is read, where a training writes: the folder itself (new, empty,
  or ``resume``), or a staging folder beside it (``overwrite``) that :meth:`OutDir.commit` swaps in only when the
  run succeeded, so a failed or interrupted replacement leaves the previous run as it was.
- :class:`RunLock` is a lock file beside the run folder (``.NAME.lock``, holding the owner's process id): a
  second training into the same folder is refused while the first runs, naming its process; the lock is an OS
  lock (``fcntl.flock``), so a process that died holding it frees it, and a lock file left by a dead process is
  taken over with a note.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

# files whose presence makes a folder a (possibly unfinished) shoulders run
RUN_MARKERS = ("model.safetensors", "config.json", "checkpoint.pt", "history.csv", "metrics.json")


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (it holds a run, or another training is writing it)."""


def lock_path(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class RunLock:
    """Holds ``.NAME.lock`` beside ``run_dir`` for the duration of a training (a context manager).

    Raises:
        RunFolderError: another live process holds the lock; the message names its process id.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = lock_path(run_dir)
        self._file: IO[str] | None = None
        self.took_over: dict[str, Any] | None = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            import fcntl
        except ImportError:  # no flock (Windows): the process-id check alone
            fcntl = None  # type: ignore[assignment]
        previous = _read_owner(handle)
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise RunFolderError(_busy_message(self.run_dir, previous)) from None
        elif previous and previous.get("pid") != os.getpid() and _alive(int(previous.get("pid", 0))):
            handle.close()
            raise RunFolderError(_busy_message(self.run_dir, previous))
        if previous and previous.get("pid") != os.getpid():
            self.took_over = previous
            print(f"note: taking over the lock of {self.run_dir} left by process {previous.get('pid')} "
                  f"(started {previous.get('started', '?')}), which is no longer running", file=sys.stderr)
        handle.seek(0)
        handle.truncate()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                   "command": " ".join(sys.argv)}, handle)
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self.path.unlink(missing_ok=True)  # before unlocking, so no one reads our stale pid
            self._file.close()
            self._file = None


def _read_owner(handle: IO[str]) -> dict[str, Any] | None:
    handle.seek(0)
    try:
        owner = json.loads(handle.read() or "null")
    except json.JSONDecodeError:
        return None
    return owner if isinstance(owner, dict) else None


def _busy_message(run_dir: Path, owner: dict[str, Any] | None) -> str:
    who = (f"process {owner.get('pid')} on {owner.get('host', '?')} (started {owner.get('started', '?')})"
           if owner else "another process")
    return f"{run_dir} is being trained by {who}; wait for it to finish, or train into another out_dir=FOLDER"


@dataclass
class OutDir:
    """Where a training writes, and how its result reaches the run folder.

    Attributes:
        final: the run folder the user named.
        work: where this run writes (``final``, or a staging folder beside it when replacing a run).
        replacing: the run in ``final`` is replaced by ``work`` on :meth:`commit`.
    """

    final: Path
    work: Path
    replacing: bool = False

    def commit(self) -> Path:
        """Swaps the finished run in (the old one goes only once the new one is in place)."""
        if not self.replacing:
            return self.final
        old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
        self.final.rename(old)
        try:
            self.work.rename(self.final)
        except OSError:
            old.rename(self.final)  # put the previous run back
            raise
        shutil.rmtree(old, ignore_errors=True)
        return self.final

    def discard(self) -> None:
        """A failed replacement: the staging folder goes, the previous run stays."""
        if self.replacing:
            shutil.rmtree(self.work, ignore_errors=True)


def run_files(path: Path) -> list[str]:
    """The run-folder files ``path`` holds (empty for a missing folder or one without any)."""
    return [name for name in RUN_MARKERS if (path / name).exists()] if path.is_dir() else []


def plan_out_dir(out_dir: str | Path, *, resume: bool = False, overwrite: bool = False) -> OutDir:
    """Checks ``out_dir`` against ``resume`` / ``overwrite`` and says where the run writes.

    Raises:
        RunFolderError: ``out_dir`` holds a run and neither flag was given; both were given; ``overwrite`` of a
            folder that is not a run (its files would be deleted); a file where the folder should be.
    """
    final = Path(out_dir)
    if final.exists() and not final.is_dir():
        raise RunFolderError(f"{final} is a file, not a run folder; choose another out_dir=FOLDER")
    found = run_files(final)
    if resume and overwrite:
        raise RunFolderError(f"resume=True and overwrite=True exclude each other: continue the run in {final} "
                             "(resume=True) or replace it (overwrite=True)")
    if resume:  # the fine-tuning road says when there is no checkpoint; the frozen one starts again, here
        final.mkdir(parents=True, exist_ok=True)
        return OutDir(final, final)
    if found and not overwrite:
        raise RunFolderError(
            f"{final} already holds a run ({', '.join(found)}); continue it with resume=True, replace it with "
            "overwrite=True (the new run is written beside it and replaces it only when it succeeds), or choose "
            "another out_dir=FOLDER")
    if overwrite and final.is_dir() and any(final.iterdir()):
        if not found:
            raise RunFolderError(f"{final} is not empty and is not a shoulders run folder; overwrite would delete "
                                 "its files: choose another out_dir=FOLDER")
        staging = final.with_name(f".{final.name}.new-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        return OutDir(final, staging, replacing=True)
    final.mkdir(parents=True, exist_ok=True)
    return OutDir(final, final)


def agreed_out_dir(out_dir: str | Path, *, resume: bool = False, overwrite: bool = False) -> OutDir:
    """:func:`plan_out_dir` decided on rank 0 and sent to every process (its error too, so that all stop)."""
    from .train.distributed import broadcast_object, is_main

    outcome: tuple[OutDir | None, str | None] | None = None
    if is_main():
        try:
            outcome = (plan_out_dir(out_dir, resume=resume, overwrite=overwrite), None)
        except RunFolderError as e:
            outcome = (None, str(e))
    result, error = broadcast_object(outcome)
    if error is not None:
        raise RunFolderError(error)
    return result  # type: ignore[return-value]
