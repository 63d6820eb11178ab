"""GPU throughput: full fine-tuning step vs the data loader's ceiling, so we know which one bounds a run.

One command on a GPU machine (about 3-5 minutes on one GPU; under 10)::

    python benchmarks/gpu_throughput.py

and a few seconds on a CPU, to check the script itself (tiny sizes, same code)::

    python benchmarks/gpu_throughput.py --quick

It measures, through shoulders' own code paths:

- **model step**: ``train_one_epoch`` (the trainer's loop: autocast, backward, AdamW over the ``full`` strategy's
  parameter groups, per-step scheduler) on pre-made batches already on the GPU, so no data loading is counted;
  224 px, bf16 autocast (fp16 + GradScaler where bf16 is missing), channels_last, for ``resnet50`` and
  ``tf_efficientnet_lite0`` (random weights: speed does not depend on them, and nothing is downloaded), with
  cuDNN's autotuner off (shoulders' default) and on;
- **frozen features**: ``extract_features`` (the frozen strategy's one pass) on the same batches;
- **loader ceiling**: ``ImageDataset`` + ``make_loader`` with the real training transform (``light`` augmentation:
  decode, random resized crop, colour jitter, normalise), over JPEG files of ImageNet-like size (500×375) written
  to a temporary folder, with pinned memory and the copy to the GPU, no model; for several worker counts. One
  extra row: PNG files, and one: ``strong`` augmentation (RandAugment), at the most workers.

It prints a table and writes JSON to ``$OUT/gpu_throughput.json`` when ``$OUT`` is set, else to
``benchmarks/results/gpu_throughput[-quick].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a plain script from a checkout, installed or not
    sys.path.insert(0, str(ROOT))

from shoulders.config import StrategyConfig  # noqa: E402
from shoulders.data import ImageDataset, Samples, create_transforms, make_loader, resolve_data_config  # noqa: E402
from shoulders.models import create_transfer_model  # noqa: E402
from shoulders.strategies import ALL_BLOCKS, Phase, create_strategy  # noqa: E402
from shoulders.train import Precision, extract_features, train_one_epoch, warmup_cosine  # noqa: E402

# glibc's malloc otherwise returns every large buffer to the OS (FINDINGS: ~3x on the CPU side); the CLI sets the
# same at start-up, so the loader is measured as `shoulders train` runs it
GLIBC_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4000000000"
PROFILES: dict[str, dict[str, Any]] = {
    "gpu": {"models": ["resnet50", "tf_efficientnet_lite0"], "image_size": 224, "batch_size": 128, "warmup": 10,
            "steps": 40, "images": 4096, "photo_size": (500, 375), "workers": [2, 4, 8, 16]},
    "quick": {"models": ["resnet50", "tf_efficientnet_lite0"], "image_size": 64, "batch_size": 8, "warmup": 1,
              "steps": 2, "images": 48, "photo_size": (120, 90), "workers": [0, 1]},
}
NUM_CLASSES = 100


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _reexec_with_malloc_tuning(argv)
    spec = dict(PROFILES["quick" if args.quick else "gpu"])
    spec.update({k: v for k, v in (("models", args.models), ("batch_size", args.batch_size),
                                   ("workers", args.workers)) if v})
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precision = _precision(device)
    start = time.perf_counter()
    model_rows = [row for name in spec["models"] for row in _model_rows(name, spec, device, precision)]
    loader_rows = _loader_rows(spec, device)
    payload = {"command": "python benchmarks/gpu_throughput.py" + (" --quick" if args.quick else ""),
               "machine": _machine(device), "profile": "quick" if args.quick else "gpu", "spec": spec,
               "precision": precision.train, "models": model_rows, "loader": loader_rows,
               "verdict": _verdict(model_rows, loader_rows), "seconds": round(time.perf_counter() - start, 1)}
    print(_table(payload), flush=True)
    path = _write(payload, args.quick)
    print(f"\nwritten to {path} ({payload['seconds']:.0f} s)")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Full fine-tuning throughput vs the data loader's ceiling, on one GPU.")
    p.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds on a CPU: checks the script")
    p.add_argument("--device", help="default: cuda when present, else cpu")
    p.add_argument("--models", nargs="+", help="timm names (default: resnet50 tf_efficientnet_lite0)")
    p.add_argument("--batch-size", type=int, help="per step (default 128 on the GPU)")
    p.add_argument("--workers", type=int, nargs="+", help="loader worker counts to try (default 2 4 8 16)")
    return p


def _reexec_with_malloc_tuning(argv: list[str] | None) -> None:
    if argv is not None or os.environ.get("GLIBC_TUNABLES") or os.environ.get("SHOULDERS_NO_REEXEC"):
        return
    if sys.platform == "linux":
        env = {**os.environ, "GLIBC_TUNABLES": GLIBC_TUNABLES}
        os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]], env)


def _precision(device: torch.device) -> Precision:
    """bf16 autocast (fp16 where a GPU lacks bf16): the precision ``--precision auto`` trains with on CUDA."""
    amp = "fp16" if device.type == "cuda" and not torch.cuda.is_bf16_supported() else "bf16"
    return Precision(train=amp, inference=amp)


# -- the model step -------------------------------------------------------------------------------------------
def _model_rows(name: str, spec: dict[str, Any], device: torch.device, precision: Precision) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    model, _ = create_transfer_model(name, NUM_CLASSES, pretrained=False)
    model.to(device).to(memory_format=torch.channels_last)
    size, batch = spec["image_size"], spec["batch_size"]
    batches = [(torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last),
                torch.randint(0, NUM_CLASSES, (batch,), device=device)) for _ in range(4)]
    rows = []
    for autotune in ([False, True] if device.type == "cuda" else [False]):
        torch.backends.cudnn.benchmark = autotune
        row = {"model": name, "image_size": size, "batch_size": batch, "cudnn_benchmark": autotune,
               "train_img_s": _train_speed(model, batches, spec, device, precision),
               "features_img_s": _feature_speed(model, batches, spec, device, precision)}
        if device.type == "cuda":
            row["peak_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            torch.cuda.reset_peak_memory_stats(device)
        print(f"  {name:<22} cudnn.benchmark={str(autotune):<5} train {row['train_img_s']:8.1f} img/s   "
              f"features {row['features_img_s']:8.1f} img/s", flush=True)
        rows.append(row)
    torch.backends.cudnn.benchmark = False
    return rows


def _train_speed(model: torch.nn.Module, batches: list[Any], spec: dict[str, Any], device: torch.device,
                 precision: Precision) -> float:
    """Images/s of the trainer's own loop over the ``full`` strategy's parameter groups, after a warm-up."""
    strategy = create_strategy(StrategyConfig(name="full"))
    strategy.apply_phase(model, Phase("finetune", 1, ALL_BLOCKS))
    optimizer = torch.optim.AdamW(strategy.param_groups(model, 1e-3, 0.1, None, 0.01), lr=1e-3)
    total = spec["warmup"] + spec["steps"]
    scheduler = warmup_cosine(optimizer, total, 0)
    scaler = torch.amp.GradScaler(device.type) if precision.needs_grad_scaler else None
    strategy.set_train_mode(model)
    criterion = torch.nn.CrossEntropyLoss()

    def run(steps: int) -> float:
        loader = [batches[i % len(batches)] for i in range(steps)]
        _sync(device)
        start = time.perf_counter()
        train_one_epoch(model, criterion, optimizer, loader, device, epoch=0, precision=precision,
                        scheduler=scheduler, scaler=scaler, channels_last=True, progress=False)
        _sync(device)
        return steps * spec["batch_size"] / (time.perf_counter() - start)

    run(spec["warmup"])
    return round(run(spec["steps"]), 1)


def _feature_speed(model: torch.nn.Module, batches: list[Any], spec: dict[str, Any], device: torch.device,
                   precision: Precision) -> float:
    """Images/s of the frozen strategy's single pass (``extract_features``), after a warm-up."""

    def run(steps: int) -> float:
        loader = [batches[i % len(batches)] for i in range(steps)]
        _sync(device)
        start = time.perf_counter()
        extract_features(model.backbone, loader, device, precision=precision, channels_last=True, progress=False)
        _sync(device)
        return steps * spec["batch_size"] / (time.perf_counter() - start)

    run(spec["warmup"])
    return round(run(spec["steps"]), 1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- the loader's ceiling -------------------------------------------------------------------------------------
def _loader_rows(spec: dict[str, Any], device: torch.device) -> list[dict[str, Any]]:
    model, _ = create_transfer_model(spec["models"][0], NUM_CLASSES, pretrained=False)
    data_config = resolve_data_config(model.backbone, spec["image_size"], None)
    most = max(spec["workers"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="shoulders-loader-") as tmp:
        jpeg = _write_images(Path(tmp), "jpeg", spec["images"], spec["photo_size"])
        png = _write_images(Path(tmp), "png", spec["images"] // 4, spec["photo_size"])  # PNG encodes slowly
        cases = [("jpeg", jpeg, "light", w) for w in spec["workers"]]
        cases += [("png", png, "light", most), ("jpeg", jpeg, "strong", most)]
        for fmt, samples, augment, workers in cases:
            train_tf, _ = create_transforms(data_config, augment=augment)
            loader = make_loader(ImageDataset(samples, train_tf), spec["batch_size"], shuffle=True, device=device,
                                 num_workers=workers, drop_last=True)
            speed = _loader_speed(loader, device)
            rows.append({"format": fmt, "augment": augment, "workers": workers, "img_s": speed,
                         "photo_size": list(spec["photo_size"]), "image_size": spec["image_size"]})
            print(f"  loader {fmt:<4} {augment:<6} {workers:>2} workers  {speed:8.1f} img/s", flush=True)
    return rows


def _write_images(folder: Path, fmt: str, n: int, size: tuple[int, int]) -> Samples:
    """``n`` photo-like files (smooth colour fields plus grain, which JPEG compresses like photographs)."""
    rng = np.random.default_rng(0)
    w, h = size
    grain = [rng.normal(0, 12, size=(h, w, 3)).astype(np.float32) for _ in range(8)]
    paths = []
    for i in range(n):
        coarse = rng.uniform(0, 255, size=(6, 8, 3)).astype(np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.float32)
        pixels = np.clip(smooth + grain[i % len(grain)], 0, 255).astype(np.uint8)
        path = folder / f"{i:05d}.{'jpg' if fmt == 'jpeg' else 'png'}"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(str(path))
    return Samples(["a", "b"], np.arange(n) % 2, paths=paths)


def _loader_speed(loader: Any, device: torch.device) -> float:
    """Images/s over one epoch, after a first epoch that starts the workers and warms the page cache."""
    for epoch in range(2):
        seen = 0
        start = time.perf_counter()
        for images, _ in loader:
            images.to(device, non_blocking=True)
            seen += images.shape[0]
        _sync(device)
        elapsed = time.perf_counter() - start
    return round(seen / elapsed, 1)


# -- the report -----------------------------------------------------------------------------------------------
def _verdict(model_rows: list[dict[str, Any]], loader_rows: list[dict[str, Any]]) -> dict[str, str]:
    ceiling = max(r["img_s"] for r in loader_rows if r["format"] == "jpeg" and r["augment"] == "light")
    out = {}
    for name in dict.fromkeys(r["model"] for r in model_rows):
        step = max(r["train_img_s"] for r in model_rows if r["model"] == name)
        bound = "the data loader" if ceiling < step else "the model step"
        out[name] = f"{bound} ({step:.0f} img/s model step vs {ceiling:.0f} img/s loader ceiling)"
    return out


def _table(payload: dict[str, Any]) -> str:
    lines = [f"\nGPU throughput on {payload['machine']['device_name']} ({payload['precision']} autocast, "
             f"channels_last, {payload['spec']['image_size']} px, batch {payload['spec']['batch_size']})",
             f"{'model':<22} {'cudnn.benchmark':>15} {'train img/s':>12} {'features img/s':>15} {'peak GB':>8}"]
    for r in payload["models"]:
        lines.append(f"{r['model']:<22} {str(r['cudnn_benchmark']):>15} {r['train_img_s']:>12.1f} "
                     f"{r['features_img_s']:>15.1f} {r.get('peak_memory_gb', float('nan')):>8.2f}")
    lines.append(f"\n{'loader':<22} {'augment':>8} {'workers':>8} {'img/s':>10}   "
                 f"({payload['machine']['cpus']} CPUs)")
    for r in payload["loader"]:
        lines.append(f"{r['format']:<22} {r['augment']:>8} {r['workers']:>8} {r['img_s']:>10.1f}")
    lines.append("")
    lines += [f"bottleneck for {name}: {text}" for name, text in payload["verdict"].items()]
    return "\n".join(lines)


def _machine(device: torch.device) -> dict[str, Any]:
    import timm

    return {"device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
            or "cpu", "cuda": torch.version.cuda, "torch": torch.__version__, "timm": timm.__version__,
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "python": platform.python_version(), "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
            "date": time.strftime("%Y-%m-%d %H:%M")}


def _write(payload: dict[str, Any], quick: bool) -> Path:
    folder = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "benchmarks" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"gpu_throughput{'-quick' if quick else ''}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


if __name__ == "__main__":
    sys.exit(main())
