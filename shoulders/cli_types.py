"""Argument types for the command line: each checks one kind of value and says what is allowed.

argparse turns the ``ArgumentTypeError`` into ``shoulders CMD: error: argument --flag: <message>`` with the
command's usage, before anything is loaded, so a bad value costs nothing and never reaches a library.
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Callable

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _number(text: str, kind: type) -> float:
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def int_at_least(low: int, meaning: str = "") -> Callable[[str], int]:
    """A whole number ≥ ``low``; ``meaning`` (e.g. "classes per image") is added to the message."""
    def parse(text: str) -> int:
        value = int(_number(text, int))
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}{f' ({meaning})' if meaning else ''}, "
                                             f"got {value}")
        return value
    parse.__name__ = f"int>={low}"  # argparse names the type in some messages
    return parse


def float_in(low: float, high: float, *, low_open: bool, high_open: bool,
             meaning: str = "") -> Callable[[str], float]:
    """A finite number in the interval from ``low`` to ``high`` (each end open or closed)."""
    def parse(text: str) -> float:
        value = _number(text, float)
        if (value <= low if low_open else value < low) or (value >= high if high_open else value > high):
            interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"must lie in {interval}{f' ({meaning})' if meaning else ''}, "
                                             f"got {text}")
        return value
    parse.__name__ = "number"
    return parse


def positive_float(meaning: str = "") -> Callable[[str], float]:
    """A finite number > 0."""
    return float_in(0.0, math.inf, low_open=True, high_open=True, meaning=meaning)


def trainable_blocks(text: str) -> float:
    """Top N blocks (a whole number ≥ 1) or a fraction of them (0 < x < 1)."""
    value = _number(text, float)
    if value <= 0 or (value >= 1 and not value.is_integer()):
        raise argparse.ArgumentTypeError(f"must be a whole number of blocks (1, 2, ...) or a fraction between 0 "
                                         f"and 1 of them, got {text}")
    return value


def device(text: str) -> str:
    """``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N``."""
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def budget(text: str) -> str:
    """A duration (``90s``, ``10m``, ``2h``, ``1h30m``); kept as written, checked by the planner's parser."""
    from .planner.budget import parse_budget  # torch-free

    try:
        parse_budget(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).replace(f"budget={text!r} ", "").replace("budget=", "")) from None
    return text


POSITIVE_INT = int_at_least(1)
NON_NEGATIVE_INT = int_at_least(0)
IMAGE_SIZE = int_at_least(16, "pixels; smaller inputs vanish inside the network")
FRACTION = float_in(0.0, 1.0, low_open=True, high_open=True)  # strictly between 0 and 1
UP_TO_ONE = float_in(0.0, 1.0, low_open=True, high_open=False)  # 0 < x ≤ 1
BELOW_ONE = float_in(0.0, 1.0, low_open=False, high_open=True)  # 0 ≤ x < 1
NON_NEGATIVE_FLOAT = float_in(0.0, math.inf, low_open=False, high_open=True)
