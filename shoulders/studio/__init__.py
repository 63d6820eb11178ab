"""``shoulders studio``: a local web page to build a data set, see the advice, train, evaluate, try and export.

Needs the optional web libraries (``pip install "shoulders[studio]"``). Importing this package is cheap (the CLI
imports its ``command`` module to build the parser); the names below load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Settings", "Studio", "create_app"]


def __getattr__(name: str) -> Any:
    if name in ("Settings", "Studio"):
        from shoulders.studio import state

        return getattr(state, name)
    if name == "create_app":
        from shoulders.studio.app import create_app

        return create_app
    raise AttributeError(f"module 'shoulders.studio' has no attribute {name!r}")
