"""Long work off the request path: short jobs (advice, evaluation, export) in threads, training in a process.

Training runs as the ordinary ``shoulders train`` command in a child process, so a run started from the page is a
run folder like any other (the CLI can read, evaluate, export or ``--resume`` it), a cancel is the same Ctrl-C a
terminal would send (the last epoch's checkpoint stays), and the page's server never waits on it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..run_folder import load_json, save_json

JOB_FILE = "studio.json"  # in the run folder: how the studio started the run, so a later studio can resume it
LOG_FILE = "train.log"
LOG_TAIL_LINES = 30
CANCEL_GRACE_SECONDS = 15.0  # after Ctrl-C, how long the run may take to stop before it is terminated
INTERRUPTED = (130, -signal.SIGINT, -signal.SIGTERM)  # exit codes of a run stopped by a cancel


@dataclass
class Task:
    """One short background job and its outcome."""

    kind: str
    status: str = "running"  # running | done | failed
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "status": self.status, "result": self.result, "error": self.error,
                "seconds": round((self.finished or time.time()) - self.started, 1)}


class Tasks:
    """Short jobs by key; one at a time per key. A failure keeps its message for the page (and the trace in the
    server's log), never takes the server down."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()

    def submit(self, key: str, fn: Callable[[], Any]) -> Task:
        with self._lock:
            current = self._tasks.get(key)
            if current is not None and current.status == "running":
                return current
            task = self._tasks[key] = Task(kind=key.split(":")[0])
        threading.Thread(target=self._run, args=(task, fn), name=f"studio-{key}", daemon=True).start()
        return task

    def get(self, key: str) -> Task | None:
        return self._tasks.get(key)

    @staticmethod
    def _run(task: Task, fn: Callable[[], Any]) -> None:
        try:
            task.result, task.status = fn(), "done"
        except Exception as exc:  # noqa: BLE001 - any failure becomes the page's message
            if not isinstance(exc, (ValueError, FileNotFoundError, RuntimeError)):
                traceback.print_exc()
            task.error, task.status = str(exc) or type(exc).__name__, "failed"
        task.finished = time.time()


def train_command(data: str, run_dir: Path, options: dict[str, Any], resume: bool = False) -> list[str]:
    """The ``shoulders train`` command line for ``options`` (flag name without dashes → value; True = bare flag)."""
    argv = [sys.executable, "-m", "shoulders", "train", data, "--out", str(run_dir)]
    for flag, value in options.items():
        if value is None or value is False or value == "":
            continue
        argv.append(f"--{flag.replace('_', '-')}")
        if value is not True:
            argv.append(str(value))
    return argv + (["--resume"] if resume else [])


class TrainJob:
    """``shoulders train`` in a child process, its output in ``RUN_DIR/train.log``."""

    def __init__(self, run_dir: Path, data: str, options: dict[str, Any]) -> None:
        self.run_dir, self.data, self.options = run_dir, data, options
        self.process: subprocess.Popen[bytes] | None = None
        self.cancelled = False

    def start(self, resume: bool = False) -> None:
        if self.running:
            raise RuntimeError(f"run {self.run_dir.name} is already training")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.cancelled = False
        save_json({"data": self.data, "options": self.options, "status": "running", "started": time.time()},
                  self.run_dir / JOB_FILE)
        log = open(self.run_dir / LOG_FILE, "ab")
        log.write(f"\n$ shoulders train {self.data} --out {self.run_dir}{' --resume' if resume else ''}\n".encode())
        log.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(train_command(self.data, self.run_dir, self.options, resume),
                                        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        log.close()  # the child holds its own copy
        threading.Thread(target=self._watch, name=f"studio-train-{self.run_dir.name}", daemon=True).start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cancel(self) -> None:
        """Ctrl-C for the run: it stops after writing what it has; terminated if it does not within the grace."""
        if not self.running:
            raise RuntimeError(f"run {self.run_dir.name} is not training")
        self.cancelled = True
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        threading.Thread(target=self._terminate_late, daemon=True).start()

    def _terminate_late(self) -> None:
        assert self.process is not None
        try:
            self.process.wait(CANCEL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.terminate()

    def ended_status(self) -> str | None:
        """finished / cancelled / failed once the process has exited (what the watcher records); ``None`` before."""
        if self.process is None or self.process.poll() is None:
            return None
        code = self.process.returncode
        return "finished" if code == 0 else "cancelled" if self.cancelled or code in INTERRUPTED else "failed"

    def _watch(self) -> None:
        assert self.process is not None
        code = self.process.wait()
        record = read_job(self.run_dir) or {}
        save_json({**record, "status": self.ended_status(), "exit_code": code, "ended": time.time()},
                  self.run_dir / JOB_FILE)


def read_job(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / JOB_FILE
    return load_json(path) if path.is_file() else None


def log_tail(run_dir: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    path = run_dir / LOG_FILE
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace").replace("\r", "\n")
    return [line for line in text.splitlines() if line.strip()][-lines:]
