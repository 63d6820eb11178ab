"""Benchmark 2 — side by side with what users would otherwise pick, in one run, on the same data and weights.

Three fresh processes train on the same PNG folders (``train/``, ``valid/``, ``test/``, written once from the
benchmark split), at 64 px, batch 64, 10 passes over the training images, from the same pretrained weights file:

- **shoulders**: ``TransferClassifier(strategy="full", epochs=10, image_size=64).fit(folder)`` (its defaults:
  BatchNorm statistics fixed, backbone at 0.1x the head's AdamW rate, warm-up + cosine, channels_last).
- **fastai** (pinned :data:`FASTAI_VERSION`, in its own virtual environment ``.bench/fastai-venv`` that reuses
  shoulders' torch and timm through a ``.pth`` file): the quick-start recipe ``ImageDataLoaders.from_folder(
  folder, valid="valid", item_tfms=Resize(64), bs=64)``, ``vision_learner(dls, "tf_efficientnet_lite0",
  metrics=accuracy, pretrained_cfg_overlay=dict(file=WEIGHTS))``, ``learn.fine_tune(9)`` — 1 frozen epoch + 9,
  fastai's default learning rate (2e-3), no batch augmentation (``full`` profile: also ``aug_transforms()``).
- **Keras-guide recipe** in plain PyTorch + timm: ``timm.create_model(..., num_classes=10, drop_rate=0.2)`` with
  the head re-initialised as Keras' ``Dense`` is (Glorot-uniform, zero bias), BatchNorm in inference mode
  throughout (``training=False``), head alone 5 epochs with Adam 1e-3, then everything 5 epochs
  with Adam 1e-5; images through torchvision's ``ImageFolder`` and timm's eval transform for the model.

Each worker times itself from data loading to test predictions (process start-up and imports excluded) and
reports test accuracy on the folder's ``test/`` images.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FASTAI_VERSION = "2.8.12"
# fastai's own dependencies, without torch/torchvision (reused from shoulders' venv) and spacy (text only)
FASTAI_DEPS = ["fastdownload>=0.0.8,<2", "fastcore>=2.2.22", "fasttransform>=0.0.3", "fastprogress>=0.2.4",
               "pandas", "requests", "cloudpickle", "plum-dispatch<2.10"]
BACKBONE = "tf_efficientnet_lite0"
PROFILES: dict[str, dict[str, Any]] = {  # "jobs": which side-by-side runs, in this order
    "quick": {"datasets": ["fashion-100"], "seeds": [0], "jobs": ["shoulders full", "fastai quickstart"]},
    "full": {"datasets": ["fashion-100", "digits"], "seeds": [0, 1, 2],
             "jobs": ["shoulders full", "shoulders auto", "fastai quickstart", "fastai aug_transforms", "keras"]},
}
JOBS: dict[str, tuple[str, list[str]]] = {  # key → (table label, worker arguments)
    "shoulders full": ("shoulders full", ["shoulders", "--strategy", "full"]),
    "shoulders auto": ("shoulders auto (the default)", ["shoulders", "--strategy", "auto"]),
    "fastai quickstart": ("fastai fine_tune (quickstart)", ["fastai", "--variant", "quickstart"]),
    "fastai aug_transforms": ("fastai fine_tune (aug_transforms)", ["fastai", "--variant", "aug_transforms"]),
    "keras": ("Keras-guide recipe (PyTorch+timm)", ["keras"]),
}


# -- the main process: prepare, run the workers, tabulate -----------------------------------------------------
def run(profile: str, datasets: list[str] | None = None, seeds: list[int] | None = None,
        methods: list[str] | None = None) -> dict[str, Any]:
    """Runs the profile's jobs (or ``methods``, keys of ``JOBS``); rows accumulate in ``results/peers-<profile>``."""
    from . import common

    spec = PROFILES[profile]
    unknown = [m for m in methods or [] if m not in JOBS]
    if unknown:
        raise ValueError(f"unknown peer job(s) {unknown}; choose from {list(JOBS)}")
    weights = common.timm_weights_file(BACKBONE)
    keys = methods or spec["jobs"]
    fastai_python, fastai_note = (ensure_fastai_venv(common.BENCH_DIR / "fastai-venv")
                                  if any(k.startswith("fastai") for k in keys) else (None, "fastai not run"))
    previous = common.read_result("peers", profile) or {}
    rows = {(r["dataset"], r["seed"], r["method"]): r for r in previous.get("rows", [])}
    for name in datasets or spec["datasets"]:
        for seed in seeds or spec["seeds"]:
            folder = image_folders(name, seed)
            for key in keys:
                label, worker = JOBS[key]
                if key.startswith("fastai") and not fastai_python:
                    continue  # the reason is in fastai_note, printed with the table
                interpreter = fastai_python if key.startswith("fastai") else common.PYTHON
                args = [str(interpreter), "-m", "benchmarks.peers", "--worker", *worker, "--folder", str(folder),
                        "--weights", str(weights), "--seed", str(seed), "--size", str(common.IMAGE_SIZE),
                        "--epochs", str(common.EPOCHS)]
                result = common.run_child(args, timeout=3600)
                row = {"dataset": name, "seed": seed, "method": label, **result}
                print(f"  {name} seed {seed} {label}: {_brief(row)}", flush=True)
                rows[(name, seed, label)] = row
                common.write_result("peers", profile, {"rows": list(rows.values())})
    all_rows = list(rows.values())
    payload = {"rows": all_rows, "fastai": fastai_note, "weights": str(weights.relative_to(common.ROOT)),
               "summary": summarise(all_rows)}
    payload["table"] = render(payload)
    common.write_result("peers", profile, payload)
    return payload


def _brief(row: dict[str, Any]) -> str:
    if "error" in row:
        return "FAILED " + row["error"]
    return f"test {100 * row['test_accuracy']:.1f} % in {row['seconds']:.0f} s (train {row['train_seconds']:.0f} s)"


def ensure_fastai_venv(venv: Path) -> tuple[Path | None, str]:
    """fastai in ``venv`` (created and installed when missing), or ``None`` and why it could not be."""
    from . import common

    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import fastai, torch, timm; print(fastai.__version__, torch.__version__)"]
    if python.is_file():
        found = subprocess.run(probe, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.split()[0] == FASTAI_VERSION:
            return python, f"fastai {found.stdout.strip()} (torch, timm shared with shoulders' venv)"
    try:
        start = time.perf_counter()
        if not python.is_file():
            subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        site = next((venv / "lib").glob("python3*/site-packages"))
        shoulders_site = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
        (site / "shoulders_venv.pth").write_text(shoulders_site + "\n")  # reuse torch, timm, numpy, PIL, ...
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run(pip + ["--no-deps", f"fastai=={FASTAI_VERSION}"], check=True, timeout=300)
        subprocess.run(pip + FASTAI_DEPS, check=True, timeout=600)
        found = subprocess.run(probe, capture_output=True, text=True, check=True, env=common.python_env())
        return python, (f"fastai {found.stdout.strip()} (torch, timm shared with shoulders' venv; installed in "
                        f"{time.perf_counter() - start:.0f} s)")
    except (subprocess.SubprocessError, OSError, StopIteration) as exc:
        note = f"fastai skipped: its venv could not be installed ({type(exc).__name__}: {exc})"
        print("  " + note, flush=True)
        return None, note


def image_folders(name: str, seed: int) -> Path:
    """The benchmark split of ``name`` as PNG files: ``<dir>/{train,valid,test}/<class>/NNNNN.png``."""
    from shoulders.data import write_image_folder

    from . import common

    out = common.BENCH_DIR / "peers" / f"{name}-seed{seed}"
    if not (out / ".complete").is_file():
        data = common.dataset(name, seed)
        for split, x, y in (("train", data.train_x, data.train_y), ("valid", data.val_x, data.val_y),
                            ("test", data.test_x, data.test_y)):
            write_image_folder(x, y, data.classes, out / split)
        (out / ".complete").write_text("ok\n")
    return out


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per data set and method: accuracy mean ± std, median seconds, and the time ratio to shoulders."""
    from . import common

    groups = common.group_rows(rows, "dataset", "method")
    out = []
    for (name, method), rs in groups.items():
        ours = groups.get((name, "shoulders full"), [])
        ratios = [r["seconds"] / o["seconds"] for r in rs for o in ours if o["seed"] == r["seed"]]
        chosen = (sorted({common.chosen_label(r.get("chosen"), r.get("trainable_blocks"), r.get("augment"))
                          for r in rs}) if "auto" in method else [])
        out.append({"dataset": name, "method": method + (f" → {'/'.join(chosen)}" if chosen else ""),
                    "seeds": len(rs),
                    "test": common.mean_std([r["test_accuracy"] for r in rs]),
                    "seconds": f"{common.summary([r['seconds'] for r in rs])['median']:.0f}",
                    "train_seconds": f"{common.summary([r['train_seconds'] for r in rs])['median']:.0f}",
                    "time_ratio": f"{common.summary(ratios)['median']:.2f}" if ratios else "—"})
    return out


def render(payload: dict[str, Any]) -> str:
    from . import common

    cols = [("dataset", "data"), ("method", "method"), ("seeds", "seeds"), ("test", "test acc %"),
            ("seconds", "wall s (median)"), ("train_seconds", "of which training s"),
            ("time_ratio", "wall time / shoulders'")]
    return f"{payload['fastai']}; weights {payload['weights']}.\n\n{common.table(payload['summary'], cols)}"


# -- workers: each runs in a fresh process and prints one JSON line -------------------------------------------
def _shoulders_worker(args: argparse.Namespace) -> dict[str, Any]:
    from shoulders import TransferClassifier

    start = time.perf_counter()
    clf = TransferClassifier(strategy=args.strategy, weights=args.weights, epochs=args.epochs, image_size=args.size,
                             batch_size=64, seed=args.seed, progress=False).fit(args.folder)
    seconds = time.perf_counter() - start
    train = sum(h["seconds"] for h in clf.history_)
    return {"test_accuracy": clf.metrics_["test_accuracy"], "val_accuracy": clf.metrics_["val_accuracy"],
            "seconds": seconds, "train_seconds": train, "chosen": clf.config_.strategy.name,
            "trainable_blocks": clf.config_.strategy.trainable_blocks, "augment": clf.config_.data.augment,
            "setting": f"{args.strategy}, {args.epochs} epochs, shoulders defaults otherwise"}


def _fastai_worker(args: argparse.Namespace) -> dict[str, Any]:
    import fastai
    from fastai.vision.all import (ImageDataLoaders, Resize, accuracy, aug_transforms, get_image_files, set_seed,
                                   vision_learner)

    set_seed(args.seed)
    start = time.perf_counter()
    batch_tfms = aug_transforms() if args.variant == "aug_transforms" else None
    dls = ImageDataLoaders.from_folder(args.folder, train="train", valid="valid", item_tfms=Resize(args.size),
                                       batch_tfms=batch_tfms, bs=64)
    learn = vision_learner(dls, BACKBONE, metrics=accuracy, pretrained_cfg_overlay={"file": args.weights})
    train_start = time.perf_counter()
    learn.fine_tune(args.epochs - 1)  # one frozen epoch first: args.epochs passes over the data in all
    train = time.perf_counter() - train_start
    test_dl = learn.dls.test_dl(get_image_files(Path(args.folder) / "test"), with_labels=True)
    preds, targets = learn.get_preds(dl=test_dl)
    test = float((preds.argmax(1) == targets).float().mean())
    return {"test_accuracy": test, "seconds": time.perf_counter() - start, "train_seconds": train,
            "setting": f"fastai {fastai.__version__}, fine_tune({args.epochs - 1}), {args.variant}, "
                       f"num_workers={dls.train.num_workers}"}


def _keras_worker(args: argparse.Namespace) -> dict[str, Any]:
    import timm
    import timm.data
    import torch
    from torchvision.datasets import ImageFolder

    torch.manual_seed(args.seed)
    start = time.perf_counter()
    # The guide's head: Dropout(0.2) then Dense, whose default init is Glorot-uniform weights and zero bias.
    model = timm.create_model(BACKBONE, pretrained=True, num_classes=10, drop_rate=0.2,
                              pretrained_cfg_overlay={"file": args.weights})
    torch.nn.init.xavier_uniform_(model.get_classifier().weight)
    torch.nn.init.zeros_(model.get_classifier().bias)
    config = timm.data.resolve_data_config({"input_size": (3, args.size, args.size)}, model=model)
    transform = timm.data.create_transform(**config)

    def loader(split: str, shuffle: bool) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(ImageFolder(str(Path(args.folder) / split), transform), batch_size=64,
                                           shuffle=shuffle)

    train_loader, test_loader = loader("train", True), loader("test", False)
    criterion = torch.nn.CrossEntropyLoss()
    # Keras: base_model(x, training=False) keeps BatchNorm in inference mode, also after unfreezing; the
    # dropout in front of the head still trains.
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    train_start = time.perf_counter()
    head = model.get_classifier()
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    for lr, params in ((1e-3, list(head.parameters())), (1e-5, list(model.parameters()))):
        for p in params:
            p.requires_grad_(True)
        optimizer = torch.optim.Adam(params, lr=lr)
        for _ in range(args.epochs // 2):
            for x, y in train_loader:
                loss = criterion(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    train = time.perf_counter() - train_start
    correct = total = 0
    model.eval()
    with torch.inference_mode():
        for x, y in test_loader:
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return {"test_accuracy": correct / total, "seconds": time.perf_counter() - start, "train_seconds": train,
            "setting": f"Glorot head after dropout 0.2; head {args.epochs // 2} ep Adam 1e-3, then all "
                       f"{args.epochs // 2} ep Adam 1e-5; BatchNorm in inference mode throughout"}


WORKERS = {"shoulders": _shoulders_worker, "fastai": _fastai_worker, "keras": _keras_worker}


def _worker_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers")
    p.add_argument("--worker", choices=list(WORKERS), required=True)
    p.add_argument("--variant", default="quickstart", choices=["quickstart", "aug_transforms"])
    p.add_argument("--strategy", default="full", help="shoulders worker: its --strategy")
    p.add_argument("--folder", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args(argv)
    print(json.dumps(WORKERS[args.worker](args)), flush=True)


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
