"""Deployable models: ONNX / TorchScript files with a parity check and an input spec, and the torch-free
prediction road that runs an exported ONNX file (``runtime``).

Names are imported on first use (``lazy_loader``), so that ``shoulders predict`` can run an exported file
through ``shoulders.export.runtime`` without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "core": ["ExportParityError", "ExportResult", "InputSpec", "export_model", "quantized_accuracy_change"],
    "formats": ["EXPORTERS", "Exporter", "list_formats"],
    "probability": ["ProbabilityModel"],
    "runtime": ["OnnxRunModel", "onnx_road"],
})

if TYPE_CHECKING:
    from shoulders.export.core import (ExportParityError, ExportResult, InputSpec, export_model,
                                       quantized_accuracy_change)
    from shoulders.export.formats import EXPORTERS, Exporter, list_formats
    from shoulders.export.probability import ProbabilityModel
    from shoulders.export.runtime import OnnxRunModel, onnx_road
