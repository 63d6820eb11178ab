"""``shoulders cache info`` / ``shoulders cache clear``: the frozen strategy's feature cache, seen and emptied."""

from __future__ import annotations

import argparse
import json


def cache_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["info", "clear"],
                   help="info: where the feature cache is, its entries, size and cap; clear: delete every entry")
    p.add_argument("--json", action="store_true", help="info: print JSON")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def run_cache(args: argparse.Namespace) -> int:
    from .train.features import cache_info, clear_cache

    if args.action == "clear":
        entries, size = clear_cache()
        print(f"removed {entries} feature cache entr{'y' if entries == 1 else 'ies'} ({_size(size)}) "
              f"from {cache_info()['directory']}")
        return 0
    info = cache_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"directory  {info['directory']}  (set SHOULDERS_CACHE_DIR to move it)")
    print(f"entries    {info['entries']}, {_size(info['bytes'])}")
    print(f"cap        {_size(info['max_bytes'])} ({info['env']}={info['max_size_setting']}); least recently used "
          "entries are deleted beyond it")
    return 0
