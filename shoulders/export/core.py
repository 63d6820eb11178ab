"""Export a trained classifier, prove the file reproduces it, and describe the input it expects.

An export is only useful if the deployed file gives the same answers as the model that was evaluated, and if its
consumer feeds it the same preprocessing. So :func:`export_model` always (1) runs the written file with the
runtime a deployment would use and compares its probabilities with PyTorch's on batches of 1 and several images,
and (2) writes ``<stem>.json`` next to the file with the input layout, size, normalisation and class names.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from shoulders.export.formats import EXPORTERS, Exporter, Runner, load_onnx
from shoulders.export.probability import ProbabilityModel

PROBE_BATCH_SIZES = (1, 3)  # 1 catches a batch axis baked in as 2 (the trace example); 3 catches one baked as 1
TRACE_BATCH_SIZE = 2  # torch.export specialises a dimension traced at size 1, so trace with 2
EVAL_BATCH_SIZE = 64


class ExportParityError(RuntimeError):
    """The exported file's probabilities differ from PyTorch's by more than the tolerance.

    Attributes:
        path: the exported file, kept so that it can be inspected.
        max_abs_diff: the largest absolute difference of probabilities seen.
        tolerance: the allowed difference.
    """

    def __init__(self, path: Path, max_abs_diff: float, tolerance: float, detail: str = "") -> None:
        self.path, self.max_abs_diff, self.tolerance = path, max_abs_diff, tolerance
        what = detail or f"max |probability difference| = {max_abs_diff:.3g} > tolerance {tolerance:.3g}"
        super().__init__(
            f"{path} does not reproduce the PyTorch model: {what}. The file was kept for inspection but should not "
            "be deployed; try the other format, or pass a larger tolerance if this difference is acceptable."
        )


@dataclass
class ExportResult:
    """What :func:`export_model` wrote and how closely it matches PyTorch.

    Attributes:
        path: the exported model file.
        format: the registered format name ("onnx", "torchscript").
        max_abs_diff: largest |probability difference| against PyTorch over the probe batches.
        tolerance: the bound ``max_abs_diff`` was checked against.
        input_spec_path: the ``<stem>.json`` that describes the expected input and the classes.
        quantized: whether an int8 file was written as well.
        accuracy_change: int8 accuracy minus fp32 accuracy in percentage points, when labelled inputs were given.
        quantized_path: the int8 file, when ``quantized``.
        quantized_max_abs_diff: int8 vs fp32 |probability difference|, reported rather than enforced.
    """

    path: Path
    format: str
    max_abs_diff: float
    tolerance: float
    input_spec_path: Path
    quantized: bool
    accuracy_change: float | None
    quantized_path: Path | None = None
    quantized_max_abs_diff: float | None = None


@dataclass(frozen=True)
class InputSpec:
    """The preprocessing a consumer must apply before calling the exported model."""

    size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    crop_pct: float

    def to_json(self) -> dict[str, Any]:
        return {
            "layout": "NCHW",
            "dtype": "float32",
            **asdict(self),
            "value_range": "RGB in [0,1] before normalisation",
            "normalisation": "(x - mean) / std per channel",
        }


def _validate(input_size: Sequence[int], mean: Sequence[float], std: Sequence[float], classes: list[str]) -> None:
    if len(input_size) != 3 or any(int(v) <= 0 for v in input_size):
        raise ValueError(f"input_size must be (channels, height, width), got {tuple(input_size)}")
    if len(mean) != input_size[0] or len(std) != input_size[0]:
        raise ValueError(f"mean and std need one value per channel ({input_size[0]}), got {len(mean)} and {len(std)}")
    if not classes:
        raise ValueError("classes is empty; pass the run's class names (classes.json)")


def _cpu_float32(model: nn.Module) -> nn.Module:
    """The model itself if it is already CPU float32, else a CPU float32 copy (the caller's model is left as is)."""
    tensors = [*model.parameters(), *model.buffers()]
    if all(t.device.type == "cpu" and (t.dtype == torch.float32 or not t.is_floating_point()) for t in tensors):
        return model
    return copy.deepcopy(model).to(device="cpu", dtype=torch.float32)


def probe_inputs(
    input_size: Sequence[int], batch_sizes: Sequence[int] = PROBE_BATCH_SIZES, seed: int = 0
) -> list[np.ndarray]:
    """Deterministic standard-normal batches, the scale of normalised images, one per batch size."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(n, *input_size, generator=generator).numpy() for n in batch_sizes]


def torch_runner(module: nn.Module) -> Runner:
    """``module`` as a function of a NumPy batch, without autograd."""

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(batch)).numpy()

    return run


def max_abs_diff(reference: Runner, candidate: Runner, batches: Sequence[np.ndarray], path: Path) -> float:
    """Largest absolute difference between two runners' outputs over ``batches``.

    Raises:
        ExportParityError: when ``candidate`` fails on a batch or returns another shape (a batch axis that was
            frozen at export time shows up this way).
    """
    worst = 0.0
    for batch in batches:
        expected = reference(batch)
        try:
            actual = candidate(batch)
        except Exception as error:  # noqa: BLE001  (any runtime's failure means the same: not deployable)
            detail = f"it fails on a batch of {len(batch)} ({error})"
            raise ExportParityError(path, float("inf"), 0.0, detail) from error
        if actual.shape != expected.shape:
            detail = f"it returns shape {actual.shape} where PyTorch returns {expected.shape}"
            raise ExportParityError(path, float("inf"), 0.0, detail)
        worst = max(worst, float(np.abs(expected - actual).max()))
    return worst


def _resolve_path(path: str | Path, suffix: str) -> Path:
    path = Path(path)
    if path.suffix == ".json":
        raise ValueError(f"{path} would collide with its input spec (<stem>.json); use a model suffix like {suffix}")
    path = path if path.suffix else path.with_suffix(suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _write_spec(
    path: Path, fmt: str, spec: InputSpec, classes: list[str], diff: float, extra: dict[str, Any]
) -> Path:
    spec_path = path.with_suffix(".json")
    document = {
        "input": spec.to_json(),
        "output": "probabilities over classes",
        "classes": list(classes),
        "format": fmt,
        "file": path.name,
        "max_abs_diff": diff,
        **extra,
    }
    spec_path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return spec_path


def _accuracy(runner: Runner, batches: list[np.ndarray], labels: np.ndarray) -> float:
    return float((np.concatenate([runner(b).argmax(axis=1) for b in batches]) == labels).mean())


def _accuracy_change(fp32: Runner, int8: Runner, inputs: torch.Tensor | np.ndarray, labels: Any) -> float:
    """int8 accuracy minus fp32 accuracy on labelled inputs, in percentage points."""
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(inputs) != len(y) or len(y) == 0:
        raise ValueError(f"need one label per input and at least one input, got {len(y)} labels for {len(inputs)}")
    batches = _batches(inputs)
    return 100.0 * (_accuracy(int8, batches, y) - _accuracy(fp32, batches, y))


def quantized_accuracy_change(
    fp32_path: str | Path, int8_path: str | Path, inputs: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray
) -> float:
    """Accuracy of the int8 ONNX model minus that of the fp32 one, in percentage points (negative = int8 worse).

    Args:
        fp32_path: the float32 ONNX file.
        int8_path: its quantised version.
        inputs: normalised images, shape (N, 3, H, W).
        labels: their integer class indices, shape (N,).
    """
    return _accuracy_change(load_onnx(Path(fp32_path)), load_onnx(Path(int8_path)), inputs, labels)


def _batches(inputs: torch.Tensor | np.ndarray) -> list[np.ndarray]:
    x = np.ascontiguousarray(np.asarray(inputs, dtype=np.float32))
    return [x[i : i + EVAL_BATCH_SIZE] for i in range(0, len(x), EVAL_BATCH_SIZE)]


def _quantize(
    result: ExportResult, spec: InputSpec, classes: list[str], calibration: Any, labels: Any
) -> dict[str, Any]:
    """Writes ``<stem>.int8<suffix>`` with its spec, fills the quantised fields of ``result`` and returns the
    entry the fp32 spec gets under "quantized"."""
    exporter = EXPORTERS.get(result.format)
    assert exporter.quantize is not None  # checked by export_model before anything was written
    path = result.path
    int8_path = path.with_name(f"{path.stem}.int8{path.suffix}")
    exporter.quantize(path, int8_path)
    fp32, int8 = exporter.load(path), exporter.load(int8_path)
    # Random batches prove the int8 file runs at every batch size; real images, when given, give the number that
    # matters, since int8 error on noise says little about error on photographs.
    diff = max_abs_diff(fp32, int8, probe_inputs(spec.size), int8_path)
    if calibration is not None:
        diff = max_abs_diff(fp32, int8, _batches(calibration), int8_path)
    change = _accuracy_change(fp32, int8, calibration, labels) if labels is not None else None
    result.quantized_path, result.quantized_max_abs_diff, result.accuracy_change = int8_path, diff, change
    measured = {"max_abs_diff_vs_fp32": diff, "accuracy_change_points": change}
    int8_extra = {"quantized_from": path.name, **measured}
    _write_spec(int8_path, f"{result.format}-int8-dynamic", spec, classes, diff, int8_extra)
    return {"file": int8_path.name, **measured}


def export_model(
    model: nn.Module,
    path: str | Path,
    *,
    format: str,
    input_size: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    classes: list[str],
    interpolation: str,
    crop_pct: float,
    tolerance: float = 1e-4,
    quantize: bool = False,
    calibration: torch.Tensor | None = None,
    calibration_labels: torch.Tensor | None = None,
    source: dict[str, Any] | None = None,
) -> ExportResult:
    """Exports ``ProbabilityModel(model)``, checks the file against PyTorch and writes its input spec.

    Args:
        model: the classifier (logits out); left in its original mode and device.
        path: the file to write; the format's suffix is added when ``path`` has none.
        format: a registered format, see :func:`shoulders.export.list_formats` ("onnx", "torchscript").
        input_size: (channels, height, width) the model was trained at.
        mean: per-channel normalisation mean, from the backbone's data config.
        std: per-channel normalisation std.
        classes: class names in output order.
        interpolation: resize interpolation the consumer should use ("bicubic", ...).
        crop_pct: centre-crop fraction the consumer should use.
        tolerance: the largest |probability difference| against PyTorch that is accepted.
        quantize: also write a dynamically quantised int8 file (formats with a quantiser only: onnx).
        calibration: normalised images (N, C, H, W) on which the int8 difference is measured.
        calibration_labels: their class indices; with them, the int8 accuracy change is reported.
        source: written into the spec as is (``run_weights_sha256`` tells ``shoulders predict`` it is up to date).

    Returns:
        An :class:`ExportResult`; the spec is written to ``<stem>.json`` (and ``<stem>.int8.json``).

    Raises:
        ValueError: unknown format, quantisation unsupported by the format, or inconsistent arguments.
        ExportParityError: the written file differs from PyTorch by more than ``tolerance`` (the file is kept).
    """
    name = EXPORTERS.canonical(format)
    exporter = EXPORTERS.get(name)
    if quantize and exporter.quantize is None:
        supported = [n for n in EXPORTERS if EXPORTERS.get(n).quantize is not None]
        raise ValueError(f"quantize=True is not available for {name}; formats that can quantise: {supported}")
    if calibration_labels is not None and calibration is None:
        raise ValueError("calibration_labels were given without calibration inputs; pass both or neither")
    _validate(input_size, mean, std, classes)
    spec = InputSpec(tuple(int(v) for v in input_size), tuple(map(float, mean)), tuple(map(float, std)),
                     str(interpolation), float(crop_pct))  # fmt: skip
    path = _resolve_path(path, exporter.suffix)
    diff = _export_and_check(model, exporter, spec, len(classes), path)
    if not diff <= tolerance:  # also catches NaN
        raise ExportParityError(path, diff, tolerance)
    result = ExportResult(path, name, diff, tolerance, path.with_suffix(".json"), quantize, None)
    extra = {"quantized": _quantize(result, spec, classes, calibration, calibration_labels)} if quantize else {}
    _write_spec(path, name, spec, classes, diff, {**(source or {}), **extra})
    return result


def _export_and_check(model: nn.Module, exporter: Exporter, spec: InputSpec, n_classes: int, path: Path) -> float:
    """Saves the wrapped model and returns its max |difference| with PyTorch; the model's mode is restored."""
    was_training = model.training
    wrapped = ProbabilityModel(_cpu_float32(model)).eval()
    try:
        reference = torch_runner(wrapped)
        example = probe_inputs(spec.size, (TRACE_BATCH_SIZE,), seed=1)[0]
        outputs = reference(example).shape[-1]
        if outputs != n_classes:
            raise ValueError(f"the model outputs {outputs} classes but {n_classes} class names were given")
        exporter.save(wrapped, torch.from_numpy(example), path)
        return max_abs_diff(reference, exporter.load(path), probe_inputs(spec.size), path)
    finally:
        model.train(was_training)
