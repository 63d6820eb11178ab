"""Distributed data parallel: `shoulders train` under torchrun, 2 CPU processes (gloo), against one process.

Each launch costs ~10 s (two interpreters importing torch and timm on two cores), so the distributed runs are made
once per module and shared: a full fine-tune (head phase, then every layer: DDP is rebuilt between the phases),
the same run interrupted after two epochs and resumed, and a frozen run through the feature cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from shoulders.cli import main
from shoulders.data import load_data
from shoulders.models import create_backbone, create_transfer_model
from shoulders.run_folder import read_run
from shoulders.run_folder import read_history
from shoulders.train.distributed import DistContext, ShardSampler, gather_shards, shard_indices

from conftest import TINY, colour_images

WORLD = 2
# 24 training images (global batch 8: 3 steps, 4 images per process), 9 validation (odd: shards of 5 and 4), 6 test
SPLITS = {"train": (8, 0), "val": (3, 1), "test": (2, 2)}
FULL = ["--strategy", "full", "--epochs", "3", "--head-epochs", "1", "--batch-size", "8"]
COMMON = ["--backbone", TINY, "--image-size", "32", "--precision", "fp32", "--seed", "3"]
INTERRUPT = """
import sys
from shoulders.cli import main
from shoulders.train import finetune

original, done = finetune._run_epoch, []

def interrupted(*args, **kwargs):  # killed at the start of the third epoch, on every process
    if len(done) == 2:
        raise KeyboardInterrupt
    done.append(1)
    return original(*args, **kwargs)

finetune._run_epoch = interrupted
sys.exit(main(sys.argv[1:]))
"""


def torchrun(args: list[str], root: Path, name: str, *, module: bool = True) -> Path:
    """Runs ``shoulders`` (or a script) in WORLD processes; returns the folder of per-rank logs."""
    logs = root / f"logs-{name}"
    env = {**os.environ, "SHOULDERS_NO_REEXEC": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc-per-node",
           str(WORLD), "--log-dir", str(logs), "--redirects", "3", *(["-m", "shoulders"] if module else []), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    if proc.returncode and any(s in proc.stderr for s in ("RendezvousConnectionError", "Address already in use",
                                                          "EADDRINUSE", "DistNetworkError")):
        pytest.skip(f"torchrun could not start its processes here: {proc.stderr[-400:]}")
    (logs / "returncode").write_text(str(proc.returncode))
    return logs


def rank_log(logs: Path, rank: int, stream: str = "stdout") -> str:
    (path,) = logs.glob(f"*/attempt_0/{rank}/{stream}.log")
    return path.read_text()


def returncode(logs: Path) -> int:
    return int((logs / "returncode").read_text())


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image folder (train/ val/ test/), a weights file for the frozen run, and every run folder."""
    root = tmp_path_factory.mktemp("distributed")
    for split, (n, seed) in SPLITS.items():
        x, y, classes = colour_images(n, seed=seed)
        for i, (img, label) in enumerate(zip(x, y)):
            folder = root / "data" / split / classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i:03d}.png")
    torch.manual_seed(0)
    backbone, _ = create_backbone(TINY, pretrained=False)
    torch.save(backbone.state_dict(), root / "tiny.pth")
    return root


@pytest.fixture(scope="module")
def full_runs(root: Path) -> dict[str, Path]:
    """The full fine-tune: in this process, and under torchrun (uninterrupted; interrupted then resumed)."""
    data = str(root / "data")
    args = ["train", data, *FULL, *COMMON, "--no-pretrained"]
    os.environ["SHOULDERS_NO_REEXEC"] = "1"
    assert main([*args, "--out", str(root / "single"), "--quiet"]) == 0
    logs = torchrun([*args, "--out", str(root / "dist")], root, "dist")
    script = root / "interrupt.py"
    script.write_text(INTERRUPT)
    cut = torchrun([str(script), *args, "--out", str(root / "resumed")], root, "cut", module=False)
    history_at_cut = read_history(root / "resumed")
    resumed = torchrun([*args, "--out", str(root / "resumed"), "--resume"], root, "resume")
    return {"single": root / "single", "dist": root / "dist", "resumed": root / "resumed", "logs": logs,
            "cut": cut, "resume_logs": resumed, "history_at_cut": history_at_cut}


def test_both_ranks_finish_and_only_rank_0_writes_or_prints(full_runs: dict) -> None:
    logs, run = full_runs["logs"], full_runs["dist"]
    assert returncode(logs) == 0, rank_log(logs, 0, "stderr")[-2000:] + rank_log(logs, 1, "stderr")[-2000:]
    # progress on: rank 0 prints the epoch lines and summary; rank 1 prints nothing. Output goes to log files,
    # not a terminal, so no progress bar writes its carriage-return lines there
    assert "epoch   3 finetune" in rank_log(logs, 0) and "run folder" in rank_log(logs, 0)
    assert "\r" not in rank_log(logs, 0, "stderr") and "batch/s" not in rank_log(logs, 0, "stderr")
    assert rank_log(logs, 1) == "" and "batch" not in rank_log(logs, 1, "stderr")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "classes.json", "config.json", "history.csv",
                                                     "metrics.json", "model.safetensors", "split.json"]
    runtime = read_run(run)["config"]["runtime"]
    assert (runtime["world_size"], runtime["backend"], runtime["batch_size_per_process"]) == (2, "gloo", 4)
    assert [r["epoch"] for r in read_history(run)] == [1, 2, 3]


def test_distributed_weights_equal_a_single_process_run_with_the_same_global_batch(full_runs: dict) -> None:
    single, dist = weights(full_runs["single"]), weights(full_runs["dist"])
    assert single.keys() == dist.keys()
    for key, value in single.items():
        torch.testing.assert_close(dist[key], value, rtol=1e-4, atol=1e-5, msg=key)
    torch.manual_seed(3)  # the initial weights (--seed 3): training moved them, so the equality above is not idle
    initial = create_transfer_model(TINY, 3, pretrained=False)[0].state_dict()
    moved = [k for k, v in single.items() if v.is_floating_point() and (v - initial[k]).abs().max() > 1e-4]
    assert "head.weight" in moved and any(k.startswith("backbone.conv_stem") for k in moved)
    a, b = read_history(full_runs["single"]), read_history(full_runs["dist"])
    for ra, rb in zip(a, b):
        assert ra["val_accuracy"] == rb["val_accuracy"] and ra["train_accuracy"] == rb["train_accuracy"]
        assert rb["val_loss"] == pytest.approx(ra["val_loss"], rel=1e-4)
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=1e-4)


def test_validation_and_test_metrics_cover_the_whole_split(full_runs: dict, root: Path) -> None:
    splits = load_data(str(root / "data"))
    metrics = read_run(full_runs["dist"])["metrics"]
    # each process holds 5 or 4 of the 9 validation images (3 or 3 of the 6 test ones): the sums were reduced
    assert (metrics["val_images"], metrics["test_images"]) == (len(splits.val), len(splits.test)) == (9, 6)
    single = read_run(full_runs["single"])["metrics"]
    assert metrics["val_accuracy"] == single["val_accuracy"] and metrics["test_accuracy"] == single["test_accuracy"]
    assert metrics["val_loss"] == pytest.approx(single["val_loss"], rel=1e-4)


def test_an_interrupted_distributed_run_resumes_as_if_uninterrupted(full_runs: dict) -> None:
    assert returncode(full_runs["cut"]) != 0 and len(full_runs["history_at_cut"]) == 2
    assert returncode(full_runs["resume_logs"]) == 0, rank_log(full_runs["resume_logs"], 0, "stderr")[-2000:]
    def rows(run: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in read_history(run)]

    assert rows(full_runs["resumed"]) == rows(full_runs["dist"])
    resumed, whole = weights(full_runs["resumed"]), weights(full_runs["dist"])
    for key, value in whole.items():
        torch.testing.assert_close(resumed[key], value, rtol=1e-6, atol=1e-7, msg=key)


def test_accelerate_launch_runs_the_same_training(full_runs: dict, root: Path) -> None:
    pytest.importorskip("accelerate")
    env = {**os.environ, "SHOULDERS_NO_REEXEC": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    # --multi_gpu selects Accelerate's torchrun-based launcher, which also starts CPU processes (gloo)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(WORLD),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "shoulders", "train",
           str(root / "data"), *FULL, *COMMON, "--no-pretrained", "--quiet", "--out", str(root / "accelerate")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run folder") == 1  # one summary: rank 0's
    assert read_run(root / "accelerate")["config"]["runtime"]["world_size"] == 2
    for key, value in weights(full_runs["dist"]).items():
        torch.testing.assert_close(weights(root / "accelerate")[key], value, rtol=1e-6, atol=1e-7, msg=key)


def test_frozen_features_are_sharded_gathered_and_cached_once(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, common = str(root / "data"), ["--strategy", "frozen", "--weights", str(root / "tiny.pth"), *COMMON]
    monkeypatch.setenv("SHOULDERS_CACHE_DIR", str(root / "cache-single"))
    assert main(["train", data, *common, "--out", str(root / "frozen-single"), "--quiet"]) == 0
    monkeypatch.setenv("SHOULDERS_CACHE_DIR", str(root / "cache-dist"))
    logs = torchrun(["train", data, *common, "--out", str(root / "frozen-dist")], root, "frozen")
    assert returncode(logs) == 0, rank_log(logs, 0, "stderr")[-2000:] + rank_log(logs, 1, "stderr")[-2000:]
    single = sorted((root / "cache-single" / "features").glob("*.npz"))
    dist = sorted((root / "cache-dist" / "features").glob("*.npz"))
    # one file per split, under the same keys, written by rank 0 alone (no temporary files left by a second writer)
    assert [p.name for p in dist] == [p.name for p in single] and len(dist) == 3
    assert not list((root / "cache-dist" / "features").glob("*.tmp*"))
    for a, b in zip(single, dist):
        with np.load(a) as fa, np.load(b) as fb:
            np.testing.assert_allclose(fb["features"], fa["features"], rtol=1e-5, atol=1e-6)
    ms, md = read_run(root / "frozen-single")["metrics"], read_run(root / "frozen-dist")["metrics"]
    assert md["val_accuracy"] == ms["val_accuracy"] and md["val_images"] == 9 and md["test_images"] == 6
    # the features agree to ~1e-8; the float32 L-BFGS head stops at a tolerance, and on these separable features
    # (weakest penalty chosen) its weights agree only to a few %, so the heads are compared by what they predict
    ws, wd = weights(root / "frozen-single"), weights(root / "frozen-dist")
    for path in single:
        with np.load(path) as f:
            x = torch.from_numpy(f["features"])
        probs = [torch.softmax(x @ w["head.weight"].T + w["head.bias"], 1) for w in (ws, wd)]
        torch.testing.assert_close(probs[1], probs[0], rtol=0, atol=1e-3)
    assert rank_log(logs, 1) == "" and "features" not in rank_log(logs, 1, "stderr")


# -- the helpers, in one process ----------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 5, 9])
def test_shards_cover_every_item_once_and_gather_back_in_order(n: int) -> None:
    shards = [list(ShardSampler(n, DistContext(rank=r, world_size=3))) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(n))
    assert [len(s) for s in shards] == [len(shard_indices(n, DistContext(rank=r, world_size=3))) for r in range(3)]
    local = np.arange(n, dtype=np.float32)[:, None]
    assert gather_shards(local, n) is local  # one process: nothing to gather


def test_batch_size_must_split_over_the_processes_and_sync_bn_needs_trained_bn() -> None:
    from shoulders.config import RunConfig
    from shoulders.train.trainer import _check_parallel_settings

    cfg = RunConfig()
    cfg.data.batch_size = 10
    with pytest.raises(ValueError, match=r"batch_size=10 is the global batch.*3 processes; use batch_size=9 or "
                                         r"batch_size=12"):
        _check_parallel_settings(cfg, DistContext(rank=0, world_size=3))
    cfg.data.batch_size, cfg.train.sync_bn = 12, True
    with pytest.raises(ValueError, match="set train_bn=True"):
        _check_parallel_settings(cfg, DistContext(rank=0, world_size=3))
    cfg.strategy.train_bn = True
    with pytest.raises(ValueError, match="CUDA"):
        _check_parallel_settings(cfg, DistContext(rank=0, world_size=3))
    _check_parallel_settings(cfg, DistContext())  # one process: --sync-bn is a no-op, the same command runs
