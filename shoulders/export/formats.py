"""Export formats: how to write a :class:`ProbabilityModel` to a file and how to run that file back.

Every format is an :class:`Exporter` in the ``EXPORTERS`` registry; :func:`shoulders.export.export_model` looks
the format up by name and never branches on it. The runner an exporter returns is what the parity check uses,
so "the exported file reproduces the PyTorch model" is checked with the same runtime a deployment would use.

Loading never unpickles Python objects: ONNX files are protobuf read by onnxruntime, and TorchScript archives
are read by TorchScript's own loader, which rebuilds code and tensors but cannot run arbitrary Python.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from shoulders._registry import Registry

Runner = Callable[[np.ndarray], np.ndarray]
logger = logging.getLogger(__name__)

ONNX_OPSET = 18  # the torch.export-based exporter's native opset; 17+ covers every op timm's models use
ONNX_PROTOBUF_LIMIT = 2 * 1024**3  # a single .onnx file cannot hold more than 2 GiB of weights
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"


@dataclass(frozen=True)
class Exporter:
    """One export format.

    Attributes:
        suffix: file extension added when the requested path has none.
        save: writes ``module`` (already in eval mode, on the CPU) traced with ``example`` to ``path``.
        load: opens a written file and returns a function from a float32 NCHW batch to probabilities.
        quantize: writes an int8 version of a written file, or ``None`` when the format has no quantisation.
    """

    suffix: str
    save: Callable[[nn.Module, torch.Tensor, Path], None]
    load: Callable[[Path], Runner]
    quantize: Callable[[Path, Path], None] | None = None


EXPORTERS: Registry[Exporter] = Registry("export format", "see shoulders.export.list_formats()")


def list_formats() -> list[str]:
    """Names of the registered export formats."""
    return EXPORTERS.names()


def _parameter_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def save_onnx(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Exports with the ``torch.export``-based exporter (``dynamo=True``) and a dynamic batch axis.

    The TorchScript-based exporter (``dynamo=False``) still works in torch 2.x but warns that it will be removed;
    the ``torch.export`` path is the maintained one and needs ``onnxscript``.
    """
    try:
        import onnxscript  # noqa: F401  (only to turn a deep ModuleNotFoundError into an actionable message)
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError("ONNX export needs onnxscript: pip install 'shoulders[export]'") from error
    batch = torch.export.Dim("batch", min=1)
    torch.onnx.export(
        module,
        (example,),
        str(path),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: batch},),
        opset_version=ONNX_OPSET,
        # One self-contained file unless the weights cannot fit in a protobuf; then a `<name>.data` sits beside it.
        external_data=_parameter_bytes(module) >= ONNX_PROTOBUF_LIMIT,
        verbose=False,
    )


def load_onnx(path: Path) -> Runner:
    """An onnxruntime CPU session for ``path``, as a function of the input batch."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: batch})[0]

    return run


def quantize_onnx(fp32_path: Path, int8_path: Path) -> None:
    """Dynamic int8 quantisation of weights (activations are quantised on the fly, so no calibration set).

    The graph first goes through onnxruntime's recommended pre-processing (shape inference and fusions, so that
    e.g. Conv+BatchNorm is quantised as one op); if that step fails on an unusual graph, the model is quantised
    as exported, which still works, only less well optimised.
    """
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    external = Path(f"{fp32_path}.data").exists()
    with tempfile.TemporaryDirectory(dir=int8_path.parent) as scratch:
        source = Path(scratch) / "preprocessed.onnx"
        try:
            quant_pre_process(str(fp32_path), str(source), save_as_external_data=external)
        except Exception as error:  # noqa: BLE001  (optional step; any failure falls back to the plain graph)
            logger.warning("ONNX quantisation pre-processing failed (%s); quantising the graph as exported", error)
            source = fp32_path
        quantize_dynamic(str(source), str(int8_path), weight_type=QuantType.QInt8, use_external_data_format=external)


@contextmanager
def _quiet_jit_deprecation() -> Iterator[None]:
    """Hides torch's FutureWarning that torch.jit is deprecated.

    TorchScript is only written when a user asks for it by name; repeating the deprecation on every export and
    parity check would bury the messages that matter. ONNX is the format to prefer.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated", category=FutureWarning)
        yield


def save_torchscript(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Traces ``module`` with ``example`` and saves the TorchScript archive.

    Tracing rather than scripting: timm's models are written for eager PyTorch and trace cleanly, while
    scripting rejects many of them. The trace is checked on other batch sizes afterwards by the parity check.
    """
    with _quiet_jit_deprecation():
        traced = torch.jit.trace(module, example, check_trace=False)
        torch.jit.save(traced, str(path))


def load_torchscript(path: Path) -> Runner:
    """A TorchScript module loaded on the CPU, as a function of the input batch."""
    with _quiet_jit_deprecation():
        module = torch.jit.load(str(path), map_location="cpu")
    module.eval()

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(batch)).numpy()

    return run


EXPORTERS.register("onnx", Exporter(".onnx", save_onnx, load_onnx, quantize_onnx))
EXPORTERS.register("torchscript", Exporter(".pt", save_torchscript, load_torchscript), aliases=("jit",))
