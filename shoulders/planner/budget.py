"""Time budgets: ``"90s"``, ``"10m"``, ``"2h"``, ``"1h30m"`` (or seconds as a number) ↔ seconds, and back to words."""

from __future__ import annotations

import math
import re

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s)")
_EXAMPLES = "e.g. budget='90s', '10m', '2h' or '1h30m', or a number of seconds"


def parse_budget(value: str | float | int | None) -> float | None:
    """Seconds from a budget; ``None`` stays ``None`` (no budget: the planner's default applies).

    Args:
        value: ``"90s"``, ``"10m"``, ``"2h"``, ``"1h30m"``, ``"1.5h"``, a bare number string (seconds) or a
            positive number of seconds.

    Raises:
        ValueError: zero, negative, non-finite or unreadable budgets, naming ``budget=`` and what to write.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"budget={value!r} is not a duration; {_EXAMPLES}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        seconds = _parse_text(str(value))
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"budget={value!r} must be a positive duration; {_EXAMPLES}")
    return seconds


def _parse_text(text: str) -> float:
    compact = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"-?\d+(\.\d+)?", compact):
        return float(compact)
    if compact.startswith("-"):
        raise ValueError(f"budget={text!r} must be a positive duration; {_EXAMPLES}")
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact or len({u for _, u in parts}) != len(parts):
        raise ValueError(f"budget={text!r} is not a duration; {_EXAMPLES}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """``4 min 10 s``, ``45 s``, ``1 h 05 min``: how long, as a person says it."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
