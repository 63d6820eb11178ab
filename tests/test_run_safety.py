"""Nothing lost: an existing run is not replaced by accident, a second training is refused while one runs,
SIGTERM leaves a resumable run, a damaged checkpoint is a clear error, and a failed write names its file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from shoulders.cli import main
from shoulders.run_folder import RunFolderWriteError, save_json, save_model

from conftest import TINY

ARGS = ["--backbone", TINY, "--no-pretrained", "--image-size", "32", "--quiet", "--precision", "fp32",
        "--num-workers", "0", "--seed", "1"]
FULL = ["--strategy", "full", "--epochs", "6", "--batch-size", "8", "--head-epochs", "1"]
SLOW = """
import sys, time
from shoulders.cli import main
from shoulders.train import finetune

original = finetune._run_epoch

def slow(*args, **kwargs):  # the same epoch, slower: time for the test to act while the run is in progress
    time.sleep(0.5)
    return original(*args, **kwargs)

finetune._run_epoch = slow
sys.exit(main(sys.argv[1:]))
"""


def train(capsys, data: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["train", str(data), "--out", str(out), *ARGS, *extra])
    out_text, err = capsys.readouterr()
    return code, out_text, err


def test_an_existing_run_is_refused_and_its_bytes_kept(capsys, tmp_path: Path, image_folder: Path) -> None:
    run = tmp_path / "run"
    assert train(capsys, image_folder, run, "--strategy", "frozen")[0] == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    code, _, err = train(capsys, image_folder, run, "--strategy", "full", "--epochs", "1")
    assert code == 1
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err and "another --out" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # model, config, metrics: byte for byte


def test_overwrite_replaces_only_on_success(capsys, tmp_path: Path, image_folder: Path) -> None:
    run = tmp_path / "run"
    assert train(capsys, image_folder, run, "--strategy", "frozen")[0] == 0
    model = (run / "model.safetensors").read_bytes()
    code, _, err = train(capsys, image_folder, run, "--overwrite", "--strategy", "frozen", "--augment", "heavy")
    assert code == 1 and "heavy" in err  # failed before training: the old run stays
    code, _, err = train(capsys, tmp_path / "missing", run, "--overwrite", "--strategy", "frozen")
    assert code == 1 and (run / "model.safetensors").read_bytes() == model
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    code, out, _ = train(capsys, image_folder, run, "--overwrite", "--strategy", "full", "--epochs", "1")
    assert code == 0 and json.loads((run / "config.json").read_text())["config"]["strategy"]["name"] == "full"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_concurrent_train_refused_then_sigterm_then_resume_matches(capsys, tmp_path: Path,
                                                                   image_folder: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text(SLOW)
    run = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, str(script), "train", str(image_folder), "--out", str(run), *ARGS,
                             *FULL], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    try:
        _wait_for(tmp_path / ".cut.lock", proc)
        code, _, err = train(capsys, image_folder, run, *FULL, "--resume")
        assert code == 1 and f"being trained by process {proc.pid} " in err
        _wait_for(run / "checkpoint.pt", proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-2000:]
    assert "interrupted (SIGTERM) after epoch" in err and "--resume" in err and "Traceback" not in err
    assert not (tmp_path / ".cut.lock").exists()  # released on the way out
    assert not (run / "model.safetensors").exists()  # the run did not finish
    torch.load(run / "checkpoint.pt", weights_only=True)  # intact
    assert train(capsys, image_folder, run, *FULL, "--resume")[0] == 0
    assert train(capsys, image_folder, tmp_path / "whole", *FULL)[0] == 0
    resumed, whole = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("cut", "whole"))
    assert resumed == whole
    history = [(tmp_path / d / "history.csv").read_text().splitlines() for d in ("cut", "whole")]
    assert [r.rsplit(",", 1)[0] for r in history[0]] == [r.rsplit(",", 1)[0] for r in history[1]]  # but seconds


@pytest.mark.parametrize("damage, message", [
    ("truncated", "is damaged"),
    ("foreign", "is not a shoulders checkpoint"),
    ("other_model", "belongs to another model"),
])
def test_a_bad_checkpoint_is_a_clear_error_on_resume(capsys, tmp_path: Path, image_folder: Path, damage: str,
                                                     message: str) -> None:
    run = tmp_path / "run"
    args = ["--strategy", "full", "--epochs", "1", "--batch-size", "8"]
    assert train(capsys, image_folder, run, *args)[0] == 0
    ckpt = run / "checkpoint.pt"
    if damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    elif damage == "foreign":
        torch.save({"weights": torch.zeros(3)}, ckpt)
    else:
        state = torch.load(ckpt, weights_only=True)
        state["model"] = {k + ".other": v for k, v in state["model"].items()}
        torch.save(state, ckpt)
    code, _, err = train(capsys, image_folder, run, *args, "--resume")
    assert code == 1 and message in err and "checkpoint.pt" in err and "Traceback" not in err


@pytest.fixture
def full_disk(tmp_path: Path):
    """A folder that refuses writes: read-only for a normal user; a 64 KiB tmpfs as root (which ignores
    permissions), skipped where it cannot be mounted."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0:
        save_json({"a": 1}, folder / "config.json")
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                      capture_output=True).returncode:
        pytest.skip("cannot make a read-only folder as root here (no tmpfs mount)")
    try:
        save_json({"a": 1}, folder / "config.json")
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


def test_a_failed_write_keeps_the_previous_file_and_names_it(full_disk: Path) -> None:
    with pytest.raises(RunFolderWriteError, match=r"could not write .*config\.json: .*previous content is unchanged"):
        save_json({"a": "x" * 200_000}, full_disk / "config.json")
    assert json.loads((full_disk / "config.json").read_text()) == {"a": 1}
    with pytest.raises(RunFolderWriteError, match=r"model\.safetensors.*nothing was written"):
        save_model(full_disk, torch.nn.Linear(500, 100))
    assert sorted(p.name for p in full_disk.iterdir()) == ["config.json"]  # no temporary files left


def test_train_into_a_full_disk_says_which_file(capsys, full_disk: Path, image_folder: Path) -> None:
    (full_disk / "config.json").unlink() if os.geteuid() == 0 else None
    code, _, err = train(capsys, image_folder, full_disk / "run", "--strategy", "full", "--epochs", "1",
                         "--batch-size", "8")
    assert code == 1 and "could not write" in err and str(full_disk) in err and "Traceback" not in err


def test_an_interrupted_overwrite_keeps_the_previous_run(capsys, tmp_path: Path, image_folder: Path) -> None:
    run = tmp_path / "run"
    assert train(capsys, image_folder, run, "--strategy", "frozen")[0] == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    script = tmp_path / "slow.py"
    script.write_text(SLOW)
    proc = subprocess.Popen([sys.executable, str(script), "train", str(image_folder), "--out", str(run), *ARGS,
                             *FULL, "--overwrite"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    try:
        _wait_for(tmp_path / f".run.new-{proc.pid}" / "checkpoint.pt", proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143 and "the previous run in it is unchanged" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # staging and lock gone


def test_a_run_folder_from_a_newer_format_says_upgrade(capsys, tmp_path: Path, image_folder: Path) -> None:
    from shoulders import RunConfig, TransferClassifier
    from shoulders.run_folder import FORMAT, RunFolderFormatError

    run = tmp_path / "run"
    code, _, err = train(capsys, image_folder, run, "--strategy", "frozen")
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert config["format"] == FORMAT  # stamped on every run folder
    RunConfig.load(run)  # this format reads
    config["format"] = FORMAT + 1
    config["config"]["data"]["a_setting_from_the_future"] = 1
    (run / "config.json").write_text(json.dumps(config))
    image = next(image_folder.rglob("*.png"))
    assert main(["predict", str(run), str(image)]) != 0
    err = capsys.readouterr().err
    assert f"run-folder format {FORMAT + 1}" in err and "upgrade shoulders" in err and "Traceback" not in err
    for load in (RunConfig.load, TransferClassifier.load):
        with pytest.raises(RunFolderFormatError, match="upgrade shoulders"):
            load(run)
    del config["format"]  # a folder from before the stamp is format 1: it is read as such
    del config["config"]["data"]["a_setting_from_the_future"]
    (run / "config.json").write_text(json.dumps(config))
    assert RunConfig.load(run).data.image_size == 32
