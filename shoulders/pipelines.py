"""Run-folder workflows behind ``shoulders evaluate`` and ``shoulders export``: load, compute, write, return.

They join the classifier (which knows run folders) with the report and export subsystems (which know neither),
so that the CLI only parses and prints.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .classifier import TransferClassifier, as_samples
from .explain import overlay, resolve_views
from .data import BadImageError, ImageDataset, Samples, create_transforms, load_labelled, make_loader
from .data.images import safe_dirname
from .export import ExportResult, export_model
from .export.runtime import file_sha256
from .report import render_report, write_evaluation
from .run_folder import MODEL_NAME

CALIBRATION_IMAGES = 512  # validation images used to measure the accuracy change of int8 quantisation


def evaluate_run(run_dir: str | Path, data: str | Path | None, *, split: str = "auto", on_bad_image: str = "skip",
                 device: str | None = None, report: bool = True, tta: bool | None = None) -> dict[str, Any]:
    """Evaluates a run folder's model on labelled ``data`` and writes metrics, figures and ``report.html``.

    Args:
        run_dir: a run folder from ``shoulders train``.
        data: an image folder or CSV; a split folder is evaluated on its ``test/`` part unless ``split`` says.
            ``None``: the run's own validation images (the files ``split.json`` lists, where they still exist).
        split: ``auto`` (test, else val, else all), or a split name.
        tta: test-time augmentation: ``None`` follows the run's rule, ``True``/``False`` force it.

    Returns:
        The evaluation: ``metrics`` (accuracy, per class, confusion, calibration...), ``top_losses`` (with a
        heatmap of the predicted class beside each image when grad-cam is installed), ``split``, ``tta`` (the
        views used), ``files`` written, ``bad_images`` skipped, and ``report`` (the page's path) when written.
    """
    clf = TransferClassifier.load(run_dir, device=device)
    if data is None:
        samples, split_name, bad = validation_samples(clf), "val", []
        if samples is None:
            raise ValueError(f"{run_dir} lists no validation images that still exist; evaluate it on labelled "
                             "images instead (pass data)")
    else:
        samples, split_name, bad = load_labelled(data, clf.classes_, split=split, on_bad_image=on_bad_image)
    decision = clf.tta_decision()
    enabled = decision.enabled if tta is None else tta
    proba, kept, undecodable = clf.predict_proba_readable(samples, tta=enabled)  # pass the scan, fail to decode
    if undecodable and on_bad_image == "error":
        raise BadImageError(undecodable[0].path, undecodable[0].reason)
    if not len(kept):
        raise ValueError(f"none of the {len(samples)} images of {data} could be read; see the messages above")
    samples = samples.subset(kept)
    bad_rows = [{"path": b.path, "reason": b.reason} for b in bad + undecodable]
    explain = _heatmap_maker(clf, samples)
    evaluation = write_evaluation(run_dir, samples.labels, proba, clf.classes_, samples.load, samples.describe,
                                  split_name, heatmaps=explain, bad_images=bad_rows)
    views = [v.name for v in resolve_views(True, clf.config_.data.hflip)] if enabled else []
    evaluation["tta"] = {"enabled": bool(enabled), "views": views, "default": decision.to_dict()}
    evaluation["images"] = len(samples)
    if report:
        evaluation["report"] = str(render_report(run_dir, evaluation))
    return evaluation


def _heatmap_maker(clf: TransferClassifier, samples: Samples) -> Callable[[list[int], list[int]], list[Any]] | None:
    """Heatmaps of chosen samples for the top-loss gallery, or ``None`` when grad-cam is not installed."""
    if importlib.util.find_spec("pytorch_grad_cam") is None:
        return None
    return lambda indices, classes: list(clf.explain(samples.subset(indices), target=classes))


def write_heatmaps(clf: TransferClassifier, inputs: Any, out_dir: str | Path, *, method: str = "gradcam") -> list[Path]:
    """Writes each image of ``inputs`` with the heatmap of its top class over it, as ``out_dir/<name>.png``.

    Returns:
        The written files, in the order of the images.
    """
    samples = as_samples(inputs)
    maps = clf.explain(samples, method=method)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for i, heat in enumerate(maps):
        stem = Path(samples.describe(i)).stem if samples.paths is not None else f"image_{i:04d}"
        path = out / f"{stem}.png"
        n = 1
        while path in paths:  # two inputs with one file name (a/x.png, b/x.png) keep both overlays
            path, n = out / f"{stem}_{n}.png", n + 1
        overlay(samples.load(i), heat).save(path)
        paths.append(path)
    return paths


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
                        quantize=quantize, calibration=inputs, calibration_labels=labels,
                        source={"run_weights_sha256": file_sha256(Path(run_dir) / MODEL_NAME)})


def validation_samples(clf: TransferClassifier, limit: int | None = None) -> Samples | None:
    """The run's validation images that still exist (at most ``limit``, a seeded choice), labelled by their class
    folder; ``None`` when there are none (array data, moved files, a CSV's own layout)."""
    files = [f for f in (clf.split_ or {}).get("val_files", []) if Path(f).is_file()]
    if limit is not None and len(files) > limit:
        files = sorted(np.random.default_rng(0).choice(files, limit, replace=False).tolist())
    names = [Path(f).parent.name for f in files]
    # folder sources: the folder is the class name, or its folder-safe form ("T-shirt/top" → "T-shirt_top")
    index = {**{safe_dirname(c): i for i, c in enumerate(clf.classes_)}, **{c: i for i, c in enumerate(clf.classes_)}}
    keep = [i for i, n in enumerate(names) if n in index]
    if not keep:
        return None
    return Samples(clf.classes_, [index[names[i]] for i in keep], paths=[files[i] for i in keep])


def _calibration(clf: TransferClassifier) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    samples = validation_samples(clf, CALIBRATION_IMAGES)
    if samples is None:
        return None, None
    _, eval_tf = create_transforms(clf.data_config_)
    loader = make_loader(ImageDataset(samples, eval_tf), 64, shuffle=False)
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)
