"""Deployable models: ONNX / TorchScript files with a parity check and an input spec."""

from shoulders.export.core import (
    ExportParityError,
    ExportResult,
    InputSpec,
    export_model,
    quantized_accuracy_change,
)
from shoulders.export.formats import EXPORTERS, Exporter, list_formats
from shoulders.export.probability import ProbabilityModel

__all__ = [
    "EXPORTERS",
    "ExportParityError",
    "ExportResult",
    "Exporter",
    "InputSpec",
    "ProbabilityModel",
    "export_model",
    "list_formats",
    "quantized_accuracy_change",
]
