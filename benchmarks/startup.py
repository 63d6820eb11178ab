"""Benchmark — where people wait (issue 13): the CLI's start-up, a frozen fit on 60 000 images, a rerun from the
feature cache, and prediction over many files; each row on this tree and on a ``before`` tree, in one run.

The ``before`` tree is ``git archive`` of ``--before`` (default: the commit issue 13 was measured on) unpacked
under ``.bench/``; both trees run the very same commands in fresh processes (``PYTHONPATH`` picks the tree), so
every row is a before/after pair measured minutes apart on the same machine.

- CLI rows: wall seconds of ``python -m shoulders ARGS`` as a user's shell starts it (no ``GLIBC_TUNABLES``, so
  the re-execution is paid where it happens), median of ``repeats``, before and after alternating.
- Fits: ``_startup_worker.py fit`` — in-process seconds of ``TransferClassifier(strategy="frozen").fit`` on
  Fashion-MNIST arrays (a tenth per class; validation = 1000 official test images, or a fifth of N below
  10 000), the head search's share of it, peak RSS; the cached pair runs twice on one fresh cache directory.
- An exported run: ``shoulders predict RUN one.jpg`` and ``RUN FOLDER`` (128 files) on a run folder that
  ``shoulders export`` wrote ``model.onnx`` into, this tree's torch road (``--runtime torch``) against its ONNX
  road, alternating, and how far the two roads' probabilities differ.
- Prediction: ``_startup_worker.py predict`` — ``predict_top_k`` over image files against a bare timm loop
  (decode, timm transform, batches of 64, fp32, inference mode) with the same model, alternating rounds.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import common

BEFORE = "d6d4a27"  # the commit on which issue 13's table was measured
WORKER = Path(__file__).with_name("_startup_worker.py")
MANY_FILES = 128  # the exported run's many-file row: the CLI on a folder, ONNX road against torch road
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"repeats": 3, "big": 10000, "before_big": True, "predict_files": 128, "rounds": 3},
    # the before tree's 60k fit takes ~7 min (benchmarks/README.md, scaling: 407 s); --before-big runs it too
    "full": {"repeats": 5, "big": 60000, "before_big": False, "predict_files": 256, "rounds": 3},
}


def run(profile: str, before: str = BEFORE) -> dict[str, Any]:
    spec = PROFILES[profile]
    trees = {"before": _before_tree(before), "after": common.ROOT}
    work = Path(tempfile.mkdtemp(prefix="shoulders-startup-"))
    try:
        one = work / "one.jpg"
        _photo_files(work / "photos", 1)[0].rename(one)
        rows = _cli_rows(trees, spec["repeats"], one)
        rows += _exported_run_rows(one, work, spec["repeats"])
        rows += _fit_rows(trees, spec, work)
        rows += _predict_rows(trees, spec, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    payload = {"rows": rows, "before": before, "profile_spec": spec}
    payload["table"] = render(payload)
    common.write_result("startup", profile, payload)
    return payload


def _before_tree(ref: str) -> Path:
    """``ref``'s files (read-only ``git archive``), unpacked once under ``.bench/before-REF``."""
    path = common.BENCH_DIR / f"before-{ref}"
    if not (path / "shoulders" / "__init__.py").is_file():
        path.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", ref], cwd=common.ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(path)], input=archive, check=True)
    return path


def _env(tree: Path, user_shell: bool) -> dict[str, str]:
    env = {**(os.environ if user_shell else common.python_env()), "PYTHONPATH": str(tree)}
    if user_shell:  # as a user's shell starts the command: shoulders decides about the malloc tuning itself
        for var in ("GLIBC_TUNABLES", "SHOULDERS_NO_REEXEC"):
            env.pop(var, None)
    return env


def _wall(args: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()  # cwd = the tree: ``python -m`` puts the working directory first on sys.path
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 2):  # --help without a command exits 2 in the old tree
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip()[-300:]}")
    return time.perf_counter() - start


def _cli_rows(trees: dict[str, Path], repeats: int, one: Path) -> list[dict[str, Any]]:
    rows = []
    for label, argv in (("shoulders --version", ["--version"]), ("shoulders --help", ["--help"]),
                        ("shoulders zoo", ["zoo"]), ("shoulders predict one.jpg (ImageNet head)",
                                                     ["predict", str(one)])):
        times: dict[str, list[float]] = {"before": [], "after": []}
        for r in range(repeats):
            for side in (("before", "after") if r % 2 == 0 else ("after", "before")):
                times[side].append(_wall([common.PYTHON, "-m", "shoulders", *argv], _env(trees[side], True),
                                         trees[side]))
        row = {"row": label, "unit": "s wall", **{k: statistics.median(v) for k, v in times.items()},
               "runs": times}
        print(f"  {label:<44} before {row['before']:6.2f} s  after {row['after']:6.2f} s", flush=True)
        rows.append(row)
    return rows


def _exported_run_rows(one: Path, work: Path, repeats: int) -> list[dict[str, Any]]:
    """``shoulders predict RUN ...`` on a run folder exported to ONNX (a frozen lite0 head on 60 photo crops, this
    tree only: the before tree cannot read today's run folders), the torch road (``--runtime torch``, "before")
    against the ONNX road (the default once exported, "after"): one image, and a folder of ``MANY_FILES``."""
    from PIL import Image

    from shoulders.data import load_photos_arrays

    x, y, classes = load_photos_arrays(per_class=10, seed=0, size=64)
    for i, (image, label) in enumerate(zip(x, y)):
        (work / "labelled" / classes[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(image)).save(work / "labelled" / classes[label] / f"{i:03d}.png")
    run_dir, env = work / "run", _env(common.ROOT, False)
    for argv in (["train", str(work / "labelled"), "--out", str(run_dir), "--strategy", "frozen", "--quiet"],
                 ["export", str(run_dir)]):
        subprocess.run([common.PYTHON, "-m", "shoulders", *argv], cwd=common.ROOT, env=env, check=True,
                       capture_output=True)
    many = work / "many"
    _photo_files(many, MANY_FILES)
    rows = []
    for label, target, rounds in (("one.jpg", one, repeats), (f"{MANY_FILES} files", many, 3)):
        times: dict[str, list[float]] = {"torch": [], "onnx": []}
        for r in range(rounds):
            for road in (("torch", "onnx") if r % 2 == 0 else ("onnx", "torch")):
                times[road].append(_wall([common.PYTHON, "-m", "shoulders", "predict", str(run_dir), str(target),
                                          "--runtime", road], _env(common.ROOT, True), common.ROOT))
        medians = {k: statistics.median(v) for k, v in times.items()}
        print(f"  {'shoulders predict RUN ' + label:<44} torch {medians['torch']:6.2f} s  onnx "
              f"{medians['onnx']:6.2f} s", flush=True)
        rows.append({"row": f"shoulders predict RUN {label}, exported run (before: --runtime torch, after: the ONNX "
                            "road)", "unit": "s wall", "before": medians["torch"], "after": medians["onnx"],
                     "runs": times})
    rows[-1]["agreement"] = _roads_agree(run_dir, many)
    print(f"  the two roads on {MANY_FILES} files: {rows[-1]['agreement']}", flush=True)
    return rows


def _roads_agree(run_dir: Path, files: Path) -> dict[str, float]:
    """Top-1 agreement and the largest |probability difference| between the two roads' ``--json`` rows (the torch
    road in its own precision: bf16 for a frozen run on a CPU with native bf16)."""
    import json

    rows = {}
    for road in ("onnx", "torch"):
        done = subprocess.run([common.PYTHON, "-m", "shoulders", "predict", str(run_dir), str(files), "--json",
                               "--top-k", "1000", "--runtime", road], cwd=common.ROOT, env=_env(common.ROOT, True),
                              capture_output=True, text=True, check=True)
        rows[road] = json.loads(done.stdout)
    diffs, same = [], []
    for a, b in zip(rows["onnx"], rows["torch"]):
        other = {t["label"]: t["probability"] for t in b["top_k"]}
        diffs += [abs(t["probability"] - other[t["label"]]) for t in a["top_k"]]
        same.append(a["label"] == b["label"])
    return {"top1_agreement": float(np.mean(same)), "max_abs_diff": float(max(diffs))}


def _worker(tree: Path, *args: str) -> dict[str, Any]:
    start = time.perf_counter()
    result = common.run_child([common.PYTHON, str(WORKER), *args], timeout=7200) if tree == common.ROOT else \
        _child_in(tree, [common.PYTHON, str(WORKER), *args])
    result["wall_seconds"] = time.perf_counter() - start
    return result


def _child_in(tree: Path, args: list[str]) -> dict[str, Any]:
    import json

    proc = subprocess.run(args, cwd=common.ROOT, env=_env(tree, False), capture_output=True, text=True,
                          timeout=7200)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: " + " | ".join(proc.stderr.strip().splitlines()[-5:])}
    return json.loads(lines[-1])


def _fit_rows(trees: dict[str, Path], spec: dict[str, Any], work: Path) -> list[dict[str, Any]]:
    rows = []
    big = spec["big"]
    sides = ("before", "after") if spec["before_big"] else ("after",)
    runs = {side: _worker(trees[side], "fit", "--images", str(big), "--size", "64") for side in sides}
    rows.append({"row": f"frozen fit, Fashion-MNIST {big:,} images, 64 px", "unit": "s in-process",
                 **{k: v.get("seconds") for k, v in runs.items()}, "runs": runs})
    for size in (64, None):  # 64 px and the backbone's default resolution (224 px for lite0)
        runs = {}
        for side in ("before", "after"):
            cache = work / f"cache-{side}-{size}"
            runs[side] = [_worker(trees[side], "fit", "--images", "1000", *(["--size", str(size)] if size else []),
                                  "--cache", str(cache)) for _ in range(2)]
        label = f"frozen fit, 1 000 images, {size or 'default'} px, first run / rerun with every feature cached"
        rows.append({"row": label, "unit": "s in-process (wall)",
                     **{k: [r.get("seconds") for r in v] for k, v in runs.items()}, "runs": runs})
    for row in rows:
        print(f"  {row['row']:<44} before {row.get('before')}  after {row['after']}", flush=True)
    return rows


def _photo_files(folder: Path, count: int) -> list[Path]:
    """``count`` JPEG files: random 256 px crops of scikit-image's photographs."""
    from PIL import Image

    from shoulders.data import load_photos_arrays

    folder.mkdir(parents=True, exist_ok=True)
    x, _, _ = load_photos_arrays(per_class=max(1, count // 6 + 1), seed=0, size=256)
    paths = []
    for i in range(count):
        path = folder / f"{i:04d}.jpg"
        Image.fromarray(np.ascontiguousarray(x[i % len(x)])).save(path, quality=90)
        paths.append(path)
    return paths


def _predict_rows(trees: dict[str, Path], spec: dict[str, Any], work: Path) -> list[dict[str, Any]]:
    files = work / "predict"
    _photo_files(files, spec["predict_files"])
    runs = {side: _worker(trees[side], "predict", "--files", str(files), "--rounds", str(spec["rounds"]))
            for side in ("before", "after")}
    row = {"row": f"predict {spec['predict_files']} files, ImageNet head, img/s (shoulders / bare timm loop)",
           "unit": "img/s", **{k: (v.get("shoulders"), v.get("bare")) for k, v in runs.items()}, "runs": runs}
    print(f"  {row['row']:<44} before {row['before']}  after {row['after']}", flush=True)
    return [row]


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):  # first / rerun
        return " / ".join(_fmt(v, unit) for v in value)
    if isinstance(value, tuple):  # shoulders / bare
        return f"{value[0]:.1f} / {value[1]:.1f} ({value[0] / value[1]:.2f}×)"
    return f"{value:.2f} s" if value < 10 else f"{value:.0f} s"


def render(payload: dict[str, Any]) -> str:
    rows = [{"row": r["row"], "before": _fmt(r.get("before"), r["unit"]), "after": _fmt(r.get("after"), r["unit"]),
             "unit": r["unit"]} for r in payload["rows"]]
    cols = [("row", "command"), ("before", f"before ({payload['before']})"), ("after", "after (this tree)"),
            ("unit", "measured as")]
    return common.table(rows, cols)
