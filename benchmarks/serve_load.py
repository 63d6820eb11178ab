"""Benchmark — serve load: ``shoulders serve`` on 127.0.0.1 under concurrent clients, batched vs one at a time.

A run folder (frozen ``tf_efficientnet_lite0`` at its default 224 px, fitted on Fashion-MNIST 10/class; kept in
``.bench/serve-run``) is served by a real ``python -m shoulders serve`` process, once with micro-batching
(``--max-batch 32``, 5 ms window) and once with ``--max-batch 1`` (one forward per image). Each time, ``clients``
threads send ``requests`` single-image multipart requests each, back to back, of real images (Fashion-MNIST test
PNGs and scikit-image photos as JPEG). Bounded: each configuration stops after its requests or ``max_seconds``.
Reported: requests/s, p50/p99 latency, errors (must be 0), the mean batch the server ran, and the gain.
The clients run on the same machine as the server, so they take some of its CPU in both configurations.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import common

PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"clients": 8, "requests": 50, "max_seconds": 60},
    "full": {"clients": 8, "requests": 200, "max_seconds": 180},
}
MAX_BATCHES = (32, 1)  # batched first, then one forward per image
RUN_DIR = common.BENCH_DIR / "serve-run"


def _run_folder() -> Path:
    """The served run: made once (≈ 30 s), then reused."""
    if (RUN_DIR / "model.safetensors").is_file():
        return RUN_DIR
    from dataclasses import replace

    from shoulders import TransferClassifier

    splits = replace(common.dataset("fashion-10", seed=0).splits(), test=None)  # no 10k-image test pass
    TransferClassifier(strategy="frozen", progress=False).fit(splits, out_dir=RUN_DIR)
    return RUN_DIR


def _request_images() -> list[tuple[str, bytes, str]]:
    """(name, bytes, content type): 64 Fashion-MNIST test images as PNG and the six photos as JPEG."""
    from PIL import Image

    from shoulders.data import load_fashion_mnist, load_photos_arrays

    def encode(array: np.ndarray, fmt: str) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format=fmt)
        return buffer.getvalue()

    x, _, _ = load_fashion_mnist("test", per_class=7, seed=0)
    images = [(f"fashion-{i}.png", encode(a, "PNG"), "image/png") for i, a in enumerate(x[:64])]
    photos, _, names = load_photos_arrays(per_class=1, size=384, seed=0)
    images += [(f"{n}.jpg", encode(a, "JPEG"), "image/jpeg") for n, a in zip(names, photos)]
    return images


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(run_dir: Path, max_batch: int) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    proc = subprocess.Popen([common.PYTHON, "-m", "shoulders", "serve", str(run_dir), "--port", str(port),
                             "--max-batch", str(max_batch), "--no-access-log"], cwd=common.ROOT,
                            env=common.python_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"shoulders serve did not come up: {proc.stderr.read().decode()[-500:] if proc.stderr else ''}")


def _client(url: str, images: list, first: int, count: int, stop_at: float, out: list) -> None:
    import httpx

    with httpx.Client(timeout=60) as client:
        for i in range(count):
            if time.monotonic() > stop_at:
                return
            name, data, ctype = images[(first + i) % len(images)]
            start = time.perf_counter()
            try:
                response = client.post(f"{url}/predict", files={"files": (name, data, ctype)})
                ok = response.status_code == 200 and response.json()[0]["path"] == name
            except Exception:  # noqa: BLE001 - a failed request is counted, not fatal
                ok = False
            out.append((time.perf_counter() - start, ok))


def _load(url: str, images: list, clients: int, requests: int, max_seconds: float) -> dict[str, Any]:
    import httpx

    for name, data, ctype in images[:16]:  # warm-up: first forwards, allocator, thread pools
        httpx.post(f"{url}/predict", files={"files": (name, data, ctype)}, timeout=60)
    before = httpx.get(f"{url}/health").json()["batches"]
    results: list[list[tuple[float, bool]]] = [[] for _ in range(clients)]
    stop_at = time.monotonic() + max_seconds
    threads = [threading.Thread(target=_client, args=(url, images, c * requests, requests, stop_at, results[c]))
               for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    after = httpx.get(f"{url}/health").json()["batches"]
    latencies = np.asarray([lat for r in results for lat, _ in r]) * 1000
    done = len(latencies)
    batches = after["batches"] - before["batches"]
    return {"requests": done, "planned": clients * requests, "errors": sum(not ok for r in results for _, ok in r),
            "wall_s": wall, "req_per_s": done / wall, "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)), "stopped_by_time": done < clients * requests,
            "mean_batch": (after["items"] - before["items"]) / batches if batches else 0.0}


def run(profile: str) -> dict[str, Any]:
    spec = PROFILES[profile]
    run_dir, images = _run_folder(), _request_images()
    rows = []
    for max_batch in MAX_BATCHES:
        proc, url = _start_server(run_dir, max_batch)
        try:
            row = _load(url, images, spec["clients"], spec["requests"], spec["max_seconds"])
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        rows.append({"max_batch": max_batch, **row})
        print(f"  max_batch {max_batch}: {row['req_per_s']:.1f} req/s, p50 {row['p50_ms']:.0f} ms, "
              f"p99 {row['p99_ms']:.0f} ms, errors {row['errors']}", flush=True)
    gain = rows[0]["req_per_s"] / rows[1]["req_per_s"]
    table = common.table(
        [{**r, "req_per_s": f"{r['req_per_s']:.1f}", "p50_ms": f"{r['p50_ms']:.0f}", "p99_ms": f"{r['p99_ms']:.0f}",
          "mean_batch": f"{r['mean_batch']:.1f}", "wall_s": f"{r['wall_s']:.1f}",
          "requests": f"{r['requests']}/{r['planned']}"} for r in rows],
        [("max_batch", "--max-batch"), ("requests", "requests"), ("errors", "errors"), ("wall_s", "wall s"),
         ("req_per_s", "req/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("mean_batch", "mean batch")])
    table += f"\n\nbatching gain: {gain:.2f}× the requests/s of one forward per image " \
             f"({spec['clients']} clients × {spec['requests']} requests, {len(images)} distinct real images)"
    payload = {"rows": rows, "gain": gain, "spec": spec, "cpus": os.cpu_count(), "table": table}
    common.write_result("serve_load", profile, payload)
    return payload
