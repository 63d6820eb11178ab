"""``shoulders studio [DATA]``: argument setup and handler (the page itself lives in this package)."""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from pathlib import Path

from ..config import DEFAULT_BACKBONE

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="?", help="image folder or CSV to open at start (else open or build one on the page)")
    p.add_argument("--port", type=int, default=7860, help="port to serve on (default %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default %(default)s: this computer only; 0.0.0.0 opens it to the network)")
    p.add_argument("--runs", default="runs", help="folder of the run folders the page trains (default %(default)s)")
    p.add_argument("--workspace", default="studio",
                   help="folder for data sets built in the browser and the advice picture (default %(default)s)")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, help="see `shoulders zoo` (default %(default)s)")
    p.add_argument("--weights", help="weights file for --backbone")
    p.add_argument("--image-size", type=int, help="input size for advice and training (default: the backbone's)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ValueError(f"port {port} on {host} is in use (another studio?); pass --port N") from None
            raise ValueError(f"cannot listen on {host}:{port} ({e.strerror}); check --host and --port") from None


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .app import create_app
    except ImportError as e:
        raise RuntimeError(f"shoulders studio needs its web libraries ({e.name} is missing): "
                           'pip install "shoulders[studio]"') from None
    from .state import Settings, Studio

    if args.weights and not Path(args.weights).is_file():
        raise FileNotFoundError(f"--weights {args.weights} does not exist")
    _check_port(args.host, args.port)
    settings = Settings(runs_dir=Path(args.runs).resolve(), workspace=Path(args.workspace).resolve(),
                        backbone=args.backbone, weights=str(Path(args.weights).resolve()) if args.weights else None,
                        image_size=args.image_size, device=args.device)
    settings.workspace.mkdir(parents=True, exist_ok=True)
    studio = Studio(settings, data=args.data)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"shoulders studio on http://{host}:{args.port}  (runs in {settings.runs_dir}; Ctrl-C to stop)", flush=True)
    if args.host not in LOOPBACK:
        print(f"warning: --host {args.host} lets other computers on the network use this studio and its files",
              file=sys.stderr, flush=True)
    hosts = [h for name in LOOPBACK for h in (name, f"{name}:{args.port}")] if args.host in LOOPBACK else None
    uvicorn.run(create_app(studio, allowed_hosts=hosts), host=args.host, port=args.port, log_level="warning")
    return 0
