"""``python -m benchmarks --profile quick|full [names...]``: runs benchmarks, prints their tables, writes JSON.

Run it under the machine's lock so heavy jobs never overlap and timings stay clean::

    flock /tmp/shoulders-heavy.lock .venv/bin/python -m benchmarks --profile quick
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback

BENCHMARKS = {  # name → (module, what it measures); run in this order
    "throughput": ("benchmarks.throughput", "images/s, shoulders vs a bare timm loop; the feature cache"),
    "accuracy": ("benchmarks.accuracy", "test accuracy of auto, each strategy and raw pixels"),
    "peers": ("benchmarks.peers", "fastai fine_tune and the Keras-guide recipe, side by side"),
    "scaling": ("benchmarks.scaling", "wall time and peak memory as the training set grows"),
    "advisor_cost": ("benchmarks.advisor_cost", "the advisor's wall time vs the brute-force search"),
    "head_solver": ("benchmarks.head_solver", "the frozen head: scikit-learn's solver vs the torch one, same features"),
    "tta": ("benchmarks.tta", "test-time augmentation: accuracy with and without, time per image"),
    "imbalance": ("benchmarks.imbalance", "long-tailed Fashion-MNIST with and without class-balanced weights"),
    "startup": ("benchmarks.startup", "where people wait: CLI start-up, a 60k frozen fit, cached reruns, "
                "prediction; before/after"),
    "serve_load": ("benchmarks.serve_load", "shoulders serve under 8 concurrent clients, batched vs one at a time"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME",
                   help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    p.add_argument("--profile", choices=["quick", "full"], default="quick",
                   help="quick: ~10 min on 2 cores; full: everything in issue 6 (hours, see benchmarks/README.md)")
    p.add_argument("--tables", action="store_true",
                   help="print the saved tables of the profile (results/*.json) with their commands; run nothing")
    p.add_argument("--datasets", nargs="+", help="accuracy, peers, tta: run these data sets instead of the profile's")
    p.add_argument("--seeds", nargs="+", type=int, help="accuracy, peers, tta: these seeds instead of the profile's")
    p.add_argument("--methods", nargs="+",
                   help="accuracy: these methods instead of the profile's; peers: these jobs (see peers.JOBS)")
    return p


def _reexec_with_malloc_tuning() -> None:
    """glibc reads GLIBC_TUNABLES only at start-up, so set it and start again (≈3x faster, FINDINGS)."""
    from .common import GLIBC_TUNABLES

    if os.environ.get("GLIBC_TUNABLES") != GLIBC_TUNABLES and not os.environ.get("SHOULDERS_BENCH_NO_REEXEC"):
        env = {**os.environ, "GLIBC_TUNABLES": GLIBC_TUNABLES, "SHOULDERS_BENCH_NO_REEXEC": "1"}
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks", *sys.argv[1:]], env)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    if args.tables:
        return _print_tables(names, args.profile)
    _reexec_with_malloc_tuning()
    overall = time.perf_counter()
    durations: dict[str, float] = {}
    failed: list[str] = []
    for name in names:
        module = importlib.import_module(BENCHMARKS[name][0])
        print(f"\n=== {name} ({args.profile}): {BENCHMARKS[name][1]}", flush=True)
        start = time.perf_counter()
        try:
            if name in ("accuracy", "peers", "tta"):
                payload = module.run(args.profile, datasets=args.datasets, seeds=args.seeds, methods=args.methods)
            else:
                payload = module.run(args.profile)
        except Exception:  # one broken benchmark must not cost the others their (long) run
            traceback.print_exc()
            payload, failed = {"table": f"{name} FAILED (traceback above)"}, failed + [name]
        durations[name] = time.perf_counter() - start
        print(payload.get("table", ""), flush=True)
        print(f"--- {name}: {durations[name]:.0f} s, results/{name}-{args.profile}.json", flush=True)
    print(f"\nall done in {time.perf_counter() - overall:.0f} s: "
          + ", ".join(f"{n} {s:.0f} s" for n, s in durations.items()), flush=True)
    return 1 if failed else 0


def _print_tables(names: list[str], profile: str) -> int:
    from .common import read_result

    for name in names:
        result = read_result(name, profile)
        if result is None:
            print(f"\n### {name} ({profile}): not run yet", flush=True)
            continue
        m = result["machine"]
        print(f"\n### {name} ({profile})\n\n`{result['command']}` — {m['date']}, {m['cpu']}, {m['cores']} cores, "
              f"torch {m['torch']}, commit {m['commit']}\n\n{result.get('table', '')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
