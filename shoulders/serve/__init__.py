"""``shoulders serve``: an HTTP prediction service for a run folder (FastAPI + uvicorn, the ``serve`` extra).

- :mod:`shoulders.serve.uploads`: uploaded bytes → RGB images, with the request, count and pixel limits (no web
  framework; the studio reuses it).
- :mod:`shoulders.serve.batcher`: the micro-batcher that puts concurrent requests onto one model forward.
- :mod:`shoulders.serve.model`: a loaded run folder as the batcher's function, and its ``/info``.
- :mod:`shoulders.serve.app`: the FastAPI application (``create_app``) and ``serve`` to run it with uvicorn.

The names below are imported on first use (PEP 562), so ``shoulders --help`` does not import FastAPI or torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name → the submodule that defines it
_EXPORTS: dict[str, str] = {
    "UploadLimits": "uploads", "UploadError": "uploads", "Upload": "uploads", "DecodedImage": "uploads",
    "decode_image": "uploads", "decode_uploads": "uploads", "RequestSizeLimit": "uploads",
    "MicroBatcher": "batcher", "BatcherFull": "batcher",
    "ServedModel": "model",
    "ServeSettings": "app", "create_app": "app", "serve": "app",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .app import ServeSettings, create_app, serve
    from .batcher import BatcherFull, MicroBatcher
    from .model import ServedModel
    from .uploads import DecodedImage, RequestSizeLimit, Upload, UploadError, UploadLimits, decode_image, decode_uploads


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shoulders.serve' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
