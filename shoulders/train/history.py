"""``history.csv``: one row per epoch, the columns every reader (report, plots) relies on first."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

HISTORY_COLUMNS = ["epoch", "phase", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"]
HISTORY_NAME = "history.csv"


def write_history(run_dir: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Writes ``rows`` atomically; extra keys (e.g. the solver's ``C``) become extra columns after the fixed ones."""
    path = Path(run_dir) / HISTORY_NAME
    extra = [k for row in rows for k in row if k not in HISTORY_COLUMNS]
    columns = HISTORY_COLUMNS + list(dict.fromkeys(extra))
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(row.get(k, "")) for k in columns})
    tmp.replace(path)
    return path


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / HISTORY_NAME
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def _parse(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value and "e" not in value else number
