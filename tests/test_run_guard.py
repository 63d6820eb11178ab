"""Run-folder safety: refusing to replace a run, staging a replacement, the lock file; interruptions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shoulders.run_guard import RunFolderError, RunLock, lock_path, plan_out_dir
from shoulders.train.interrupt import TrainingInterrupted, exit_code, interruptible


def _fake_run(path: Path) -> bytes:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"old weights")
    (path / "config.json").write_text("{}")
    return (path / "model.safetensors").read_bytes()


def test_an_existing_run_is_refused_without_resume_or_overwrite(tmp_path: Path) -> None:
    old = _fake_run(tmp_path / "x")
    with pytest.raises(RunFolderError, match=r"already holds a run .*resume=True.*overwrite=True.*another out_dir="):
        plan_out_dir(tmp_path / "x")
    assert (tmp_path / "x" / "model.safetensors").read_bytes() == old
    assert plan_out_dir(tmp_path / "x", resume=True).work == tmp_path / "x"
    with pytest.raises(RunFolderError, match="exclude each other"):
        plan_out_dir(tmp_path / "x", resume=True, overwrite=True)
    fresh = plan_out_dir(tmp_path / "new")
    assert fresh.work == fresh.final == tmp_path / "new" and fresh.final.is_dir() and not fresh.replacing
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    assert plan_out_dir(tmp_path / "notes").work == tmp_path / "notes"  # not a run: written into, nothing lost
    with pytest.raises(RunFolderError, match="not a shoulders run folder; overwrite would delete"):
        plan_out_dir(tmp_path / "notes", overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="is a file"):
        plan_out_dir(tmp_path / "file")


def test_overwrite_is_staged_and_swapped_only_on_commit(tmp_path: Path) -> None:
    old = _fake_run(tmp_path / "x")
    out = plan_out_dir(tmp_path / "x", overwrite=True)
    assert out.replacing and out.work.parent == tmp_path and out.work != out.final
    (out.work / "model.safetensors").write_bytes(b"new weights")
    assert (tmp_path / "x" / "model.safetensors").read_bytes() == old  # untouched until the run succeeded
    out.discard()  # a failed run
    assert not out.work.exists() and (tmp_path / "x" / "model.safetensors").read_bytes() == old
    out = plan_out_dir(tmp_path / "x", overwrite=True)
    (out.work / "model.safetensors").write_bytes(b"new weights")
    out.commit()
    assert (tmp_path / "x" / "model.safetensors").read_bytes() == b"new weights"
    assert not (tmp_path / "x" / "config.json").exists()  # the old run's files went with it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]  # no staging or old folder left behind


def test_a_second_lock_is_refused_naming_the_first_process(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from shoulders.run_guard import RunLock\n"
        f"with RunLock({str(tmp_path / 'x')!r}):\n    print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match=f"being trained by process {holder.pid} "):
            with RunLock(tmp_path / "x"):
                pass
    finally:
        holder.kill()
        holder.wait()
    # the holder died without cleaning up: its lock file names a dead process, which is taken over with a note
    assert json.loads(lock_path(tmp_path / "x").read_text())["pid"] == holder.pid
    with RunLock(tmp_path / "x") as lock:
        assert lock.took_over["pid"] == holder.pid
        assert json.loads(lock_path(tmp_path / "x").read_text())["pid"] == os.getpid()
    assert not lock_path(tmp_path / "x").exists()  # released on exit


def test_sigterm_inside_interruptible_raises_training_interrupted() -> None:
    with pytest.raises(TrainingInterrupted) as info:
        with interruptible():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(10**7):  # the handler runs between bytecodes
                pass
    assert info.value.exit_code == 143 and exit_code(info.value) == 143
    assert exit_code(KeyboardInterrupt()) == 130
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored
