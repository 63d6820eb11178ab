"""Run-folder workflows behind ``shoulders evaluate`` and ``shoulders export``: load, compute, write, return.

They join the classifier (which knows run folders) with the report and export subsystems (which know neither),
so that the CLI only parses and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .classifier import TransferClassifier
from .data import BadImageError, ImageDataset, Samples, create_transforms, load_labelled, make_loader
from .data.images import safe_dirname
from .export import ExportResult, export_model
from .report import render_report, write_evaluation

CALIBRATION_IMAGES = 512  # validation images used to measure the accuracy change of int8 quantisation


def evaluate_run(run_dir: str | Path, data: str | Path, *, split: str = "auto", on_bad_image: str = "skip",
                 device: str | None = None, report: bool = True) -> dict[str, Any]:
    """Evaluates a run folder's model on labelled ``data`` and writes metrics, figures and ``report.html``.

    Args:
        run_dir: a run folder from ``shoulders train``.
        data: an image folder or CSV; a split folder is evaluated on its ``test/`` part unless ``split`` says.
        split: ``auto`` (test, else val, else all), or a split name.

    Returns:
        The evaluation: ``metrics`` (accuracy, per class, confusion, calibration...), ``top_losses``, ``split``,
        ``files`` written, ``bad_images`` skipped, and ``report`` (the page's path) when written.
    """
    clf = TransferClassifier.load(run_dir, device=device)
    samples, split_name, bad = load_labelled(data, clf.classes_, split=split, on_bad_image=on_bad_image)
    proba, kept, undecodable = clf.predict_proba_readable(samples)  # files that pass the scan but do not decode
    if undecodable and on_bad_image == "error":
        raise BadImageError(undecodable[0].path, undecodable[0].reason)
    if not len(kept):
        raise ValueError(f"none of the {len(samples)} images of {data} could be read; see the messages above")
    samples = samples.subset(kept)
    bad_rows = [{"path": b.path, "reason": b.reason} for b in bad + undecodable]
    evaluation = write_evaluation(run_dir, samples.labels, proba, clf.classes_, samples.load, samples.describe,
                                  split_name, bad_images=bad_rows)
    evaluation["images"] = len(samples)
    if report:
        evaluation["report"] = str(render_report(run_dir, evaluation))
    return evaluation


def export_run(run_dir: str | Path, format: str = "onnx", out: str | Path | None = None, *,
               quantize: bool = False, tolerance: float = 1e-4) -> ExportResult:
    """Exports a run folder's model (normalised image tensor → class probabilities) with a parity check.

    With ``quantize`` (ONNX), the accuracy change of the int8 model is measured on up to
    ``CALIBRATION_IMAGES`` images of the run's validation split, when those files still exist.
    """
    clf = TransferClassifier.load(run_dir, device="cpu")
    cfg = clf.data_config_
    out = Path(out) if out is not None else Path(run_dir) / f"model.{'onnx' if format == 'onnx' else 'pt'}"
    inputs, labels = _calibration(clf) if quantize else (None, None)
    return export_model(clf.model_.float().eval(), out, format=format, input_size=tuple(cfg["input_size"]),
                        mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), classes=clf.classes_,
                        interpolation=cfg["interpolation"], crop_pct=cfg["crop_pct"], tolerance=tolerance,
                        quantize=quantize, calibration=inputs, calibration_labels=labels)


def _calibration(clf: TransferClassifier) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    files = [f for f in (clf.split_ or {}).get("val_files", []) if Path(f).is_file()]
    if not files:
        return None, None
    rng = np.random.default_rng(0)
    if len(files) > CALIBRATION_IMAGES:
        files = sorted(rng.choice(files, CALIBRATION_IMAGES, replace=False).tolist())
    names = [Path(f).parent.name for f in files]
    # folder sources: the folder is the class name, or its folder-safe form ("T-shirt/top" → "T-shirt_top")
    index = {**{safe_dirname(c): i for i, c in enumerate(clf.classes_)}, **{c: i for i, c in enumerate(clf.classes_)}}
    keep = [i for i, n in enumerate(names) if n in index]
    if not keep:
        return None, None
    samples = Samples(clf.classes_, [index[names[i]] for i in keep], paths=[files[i] for i in keep])
    _, eval_tf = create_transforms(clf.data_config_)
    loader = make_loader(ImageDataset(samples, eval_tf), 64, shuffle=False)
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)
