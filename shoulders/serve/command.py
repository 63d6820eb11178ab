"""``shoulders serve RUN``: the subcommand's flags and handler (registered in ``shoulders.cli``'s command table).

Only argparse at import time: FastAPI, uvicorn and torch load when the command runs.
"""

from __future__ import annotations

import argparse
import sys

HELP = "serve a run folder's predictions over HTTP (POST /predict, GET /health, GET /info, docs at /docs)"


def serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN", help="a run folder from `shoulders train`")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default %(default)s: this machine only; "
                                                       "0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default %(default)s)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: the run's, auto)")
    p.add_argument("--top-k", type=int, default=3, help="classes per image unless ?top_k= says (default 3)")
    p.add_argument("--max-batch", type=int, default=32, help="images per model forward, at most; 1 turns "
                                                              "batching off (default %(default)s)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long the first image of a batch waits for others (default %(default)s ms)")
    p.add_argument("--max-queue", type=int, default=512, help="images waiting for the model before requests get "
                                                              "503 busy (default %(default)s)")
    p.add_argument("--max-files", type=int, default=16, help="images per request (default %(default)s)")
    p.add_argument("--max-request-mb", type=float, default=32.0, help="request body limit (default %(default)s MiB)")
    p.add_argument("--max-pixels", type=int, default=40_000_000,
                   help="pixels per image, checked before decoding (default %(default)s)")
    p.add_argument("--no-access-log", action="store_true", help="no log line per request")


def settings_from_args(args: argparse.Namespace):  # -> ServeSettings (imported lazily)
    """The CLI's flags as :class:`ServeSettings`; a library ``ValueError`` is re-worded with the flag's name."""
    from .app import ServeSettings
    from .uploads import UploadLimits

    checks = {"--port": 0 < args.port < 65536, "--top-k": args.top_k >= 1, "--max-batch": args.max_batch >= 1,
              "--max-wait-ms": args.max_wait_ms >= 0, "--max-queue": args.max_queue >= args.max_batch,
              "--max-files": args.max_files >= 1, "--max-request-mb": args.max_request_mb > 0,
              "--max-pixels": args.max_pixels >= 1}
    bad = [flag for flag, ok in checks.items() if not ok]
    if bad:
        raise ValueError(f"{bad[0]} is out of range (port 1-65535, --max-queue ≥ --max-batch, the others ≥ 1 "
                         f"or > 0); see `shoulders serve --help`")
    limits = UploadLimits(max_files=args.max_files, max_request_bytes=int(args.max_request_mb * 2**20),
                          max_pixels=args.max_pixels)
    return ServeSettings(host=args.host, port=args.port, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                         max_queue=args.max_queue, top_k=args.top_k, limits=limits, device=args.device,
                         access_log=not args.no_access_log)


def serve_command(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise RuntimeError(f"shoulders serve needs FastAPI and uvicorn ({e.name} is missing): "
                           "pip install 'shoulders[serve]'") from None
    from .app import serve
    from .model import ServedModel

    settings = settings_from_args(args)
    model = ServedModel(args.run_dir, device=settings.device)  # a missing or damaged run folder stops here
    info = model.info()
    print(f"serving {args.run_dir}: {info['backbone']}, {len(info['classes'])} classes, {info['device']} "
          f"{info['precision']}; docs at http://{settings.host}:{settings.port}/docs", file=sys.stderr, flush=True)
    serve(model, settings)
    return 0
