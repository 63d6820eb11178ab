"""Tests for shoulders.export: parity with PyTorch, dynamic batch, input spec, int8, and the failure paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from torch import nn

from shoulders.export import (
    ExportParityError,
    ExportResult,
    ProbabilityModel,
    export_model,
    list_formats,
    quantized_accuracy_change,
)

INPUT_SIZE = (3, 32, 32)
CLASSES = ["ant", "bee", "wasp"]
SPEC = {
    "input_size": INPUT_SIZE, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "classes": CLASSES,
    "interpolation": "bicubic", "crop_pct": 0.875,
}  # fmt: skip


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, len(CLASSES)),
    ).eval()  # fmt: skip


def _batch(n: int, seed: int = 7) -> torch.Tensor:
    return torch.randn(n, *INPUT_SIZE, generator=torch.Generator().manual_seed(seed))


def _probabilities(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.softmax(model(x), dim=-1).numpy()


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, ExportResult, torch.Tensor, torch.Tensor]:
    """One ONNX export of a real timm architecture (with int8), shared because the exporter takes seconds."""
    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", num_classes=len(CLASSES)).train()  # mode must be restored
    calibration = _batch(24, seed=3)
    labels = torch.from_numpy(_probabilities(model.eval(), calibration).argmax(axis=1))
    model.train()
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    result = export_model(
        model, path, format="onnx", **SPEC, quantize=True, calibration=calibration, calibration_labels=labels
    )
    return model, result, calibration, labels


def test_onnx_parity_and_dynamic_batch(onnx_export) -> None:
    import onnxruntime

    model, result, _, _ = onnx_export
    assert model.training  # export_model put the caller's model back in its mode
    assert result.format == "onnx" and result.path.name == "model.onnx" and result.path.is_file()
    assert 0.0 <= result.max_abs_diff <= result.tolerance == 1e-4
    assert not Path(f"{result.path}.data").exists()  # small models are one self-contained file
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    model.eval()
    for n in (1, 3):
        x = _batch(n)
        out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        assert out.shape == (n, len(CLASSES))
        np.testing.assert_allclose(out, _probabilities(model, x), atol=1e-4)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    model.train()


def test_onnx_input_spec(onnx_export) -> None:
    _, result, _, _ = onnx_export
    assert result.input_spec_path == result.path.with_name("model.json")
    spec = json.loads(result.input_spec_path.read_text())
    assert spec["input"] == {
        "layout": "NCHW", "dtype": "float32", "size": [3, 32, 32], "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225], "interpolation": "bicubic", "crop_pct": 0.875,
        "value_range": "RGB in [0,1] before normalisation", "normalisation": "(x - mean) / std per channel",
    }  # fmt: skip
    assert spec["output"] == "probabilities over classes" and spec["classes"] == CLASSES
    assert spec["format"] == "onnx" and spec["max_abs_diff"] == result.max_abs_diff
    assert spec["quantized"]["file"] == "model.int8.onnx"


def test_onnx_int8(onnx_export) -> None:
    import onnxruntime

    _, result, calibration, labels = onnx_export
    assert result.quantized and result.quantized_path == result.path.with_name("model.int8.onnx")
    assert result.quantized_path.stat().st_size < result.path.stat().st_size
    session = onnxruntime.InferenceSession(str(result.quantized_path), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: _batch(3).numpy()})[0]
    assert out.shape == (3, len(CLASSES)) and np.isfinite(out).all()
    assert 0.0 <= result.quantized_max_abs_diff < 1.0
    change = quantized_accuracy_change(result.path, result.quantized_path, calibration, labels)
    assert result.accuracy_change == pytest.approx(change) and -100.0 <= change <= 0.0  # labels = fp32 predictions
    assert json.loads(result.path.with_name("model.int8.json").read_text())["quantized_from"] == "model.onnx"


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_parity_and_dynamic_batch(tmp_path: Path) -> None:
    model = _tiny()
    result = export_model(model, tmp_path / "tiny", format="torchscript", **SPEC)
    assert result.path == tmp_path / "tiny.pt" and result.format == "torchscript"
    assert result.max_abs_diff <= 1e-5 and not result.quantized and result.accuracy_change is None
    loaded = torch.jit.load(str(result.path), map_location="cpu")
    for n in (1, 3):
        x = _batch(n)
        np.testing.assert_allclose(loaded(x).detach().numpy(), _probabilities(model, x), atol=1e-5)
    assert json.loads((tmp_path / "tiny.json").read_text())["format"] == "torchscript"


def test_non_float32_model_is_exported_from_a_copy(tmp_path: Path) -> None:
    model = _tiny().double()
    result = export_model(model, tmp_path / "m.pt", format="jit", **SPEC)  # alias of torchscript
    assert result.format == "torchscript" and result.max_abs_diff <= 1e-5
    assert next(model.parameters()).dtype == torch.float64  # the caller's model is untouched


def test_probability_model_outputs_softmax() -> None:
    model = _tiny()
    x = _batch(4)
    with torch.inference_mode():
        probs = ProbabilityModel(model)(x)
    np.testing.assert_allclose(probs.numpy(), _probabilities(model, x), atol=1e-6)


def test_bad_arguments(tmp_path: Path) -> None:
    assert list_formats() == ["onnx", "torchscript"]
    with pytest.raises(ValueError, match="unknown export format 'onnnx'; did you mean onnx.*valid: onnx, torchscript"):
        export_model(_tiny(), tmp_path / "m", format="onnnx", **SPEC)
    with pytest.raises(ValueError, match="not available for torchscript.*onnx"):
        export_model(_tiny(), tmp_path / "m", format="torchscript", **SPEC, quantize=True)
    with pytest.raises(ValueError, match="outputs 3 classes but 2"):
        export_model(_tiny(), tmp_path / "m", format="torchscript", **{**SPEC, "classes": ["a", "b"]})
    with pytest.raises(ValueError, match="one value per channel"):
        export_model(_tiny(), tmp_path / "m", format="torchscript", **{**SPEC, "mean": (0.5,)})
    assert not list(tmp_path.iterdir())  # nothing written for rejected arguments


def test_parity_failure_keeps_file_and_names_difference(tmp_path: Path) -> None:
    with pytest.raises(ExportParityError, match=r"max \|probability difference\| = .* > tolerance -1") as info:
        export_model(_tiny(), tmp_path / "m.pt", format="torchscript", **{**SPEC, "tolerance": -1.0})
    assert info.value.path.is_file() and info.value.tolerance == -1.0
    assert not (tmp_path / "m.json").exists()  # no spec: the file is not vouched for
