"""shoulders serve: predictions equal the library's, every bad input is a 4xx, batching, SIGTERM, start-up errors."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="shoulders serve needs the 'serve' extra: pip install 'shoulders[serve]'")
pytest.importorskip("httpx", reason="the serve tests talk HTTP through httpx (in the 'dev' extra)")
import httpx  # noqa: E402
import uvicorn  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from shoulders import RunConfig, TransferClassifier  # noqa: E402
from shoulders.cli import main  # noqa: E402
from shoulders.serve import ServedModel, ServeSettings, UploadLimits, create_app  # noqa: E402

from conftest import TINY, colour_images  # noqa: E402

# Frozen strategy: on a CPU with native bf16 its predict path runs in bf16, so serving must too.
MODES = [("RGB", "PNG"), ("L", "PNG"), ("RGBA", "PNG"), ("P", "GIF"), ("CMYK", "JPEG"), ("I;16", "PNG")]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, y, classes = colour_images(8)
    cfg = RunConfig()
    cfg.train.feature_cache = False  # module-scoped: keep clear of the per-test cache directory
    clf = TransferClassifier(backbone=TINY, strategy="frozen", pretrained=False, image_size=32, progress=False,
                             config=cfg)
    out = tmp_path_factory.mktemp("serve") / "run"
    clf.fit(x, np.asarray(classes)[y], out_dir=out)
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One file per mode, of different sizes, coloured like the three classes."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    files = {}
    for i, (mode, fmt) in enumerate(MODES):
        base = np.zeros(3)
        base[i % 3] = 200
        pixels = rng.normal(base, 40, size=(20 + 3 * i, 28 - 2 * i, 3)).clip(0, 255).astype(np.uint8)
        path = folder / f"{mode.replace(';', '')}.{fmt.lower()}"
        Image.fromarray(pixels).convert(mode).save(path, format=fmt)
        files[mode] = path
    return files


@pytest.fixture(scope="module")
def served(run_dir: Path) -> ServedModel:
    return ServedModel(run_dir)


LIMITS = UploadLimits(max_files=3, max_request_bytes=20_000, max_pixels=10_000)


@pytest.fixture(scope="module")
def client(served: ServedModel):
    with TestClient(create_app(served, ServeSettings(limits=LIMITS, max_wait_ms=1.0))) as c:
        yield c


def assert_rows_match(served_rows: list[dict], library_rows: list[dict], names: list[str]) -> None:
    """Same labels in the same order; probabilities equal up to the last bits of float noise."""
    assert [r["path"] for r in served_rows] == names
    for got, want in zip(served_rows, library_rows):
        assert got["label"] == want["label"]
        assert [t["label"] for t in got["top_k"]] == [t["label"] for t in want["top_k"]]
        np.testing.assert_allclose([t["probability"] for t in got["top_k"]],
                                   [t["probability"] for t in want["top_k"]], rtol=0, atol=1e-6)


def test_prediction_equals_predict_top_k_for_every_mode(client: TestClient, served: ServedModel,
                                                        images: dict[str, Path]) -> None:
    clf = TransferClassifier.load(served.run_dir)
    for mode, path in images.items():
        want = clf.predict_top_k(str(path), k=2)
        got = client.post("/predict?top_k=2", files={"files": (path.name, path.read_bytes())})
        assert got.status_code == 200, (mode, got.text)
        assert_rows_match(got.json(), want, [path.name])
        payload = {"images": [{"name": "b64", "data": base64.b64encode(path.read_bytes()).decode()}]}
        assert_rows_match(client.post("/predict?top_k=2", json=payload).json(), want, ["b64"])
    two = [images["L"], images["RGB"]]  # in the order predict_top_k gives files (sorted)
    got = client.post("/predict", files=[("files", (p.name, p.read_bytes())) for p in two])
    assert_rows_match(got.json(), clf.predict_top_k([str(p) for p in two], k=3), [p.name for p in two])
    assert len(got.json()[0]["top_k"]) == 3  # the server's default top_k, like the CLI's


def test_a_run_with_test_time_augmentation_is_served_with_it(tmp_path: Path, images: dict[str, Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import shoulders.classifier as classifier_module
    from shoulders.explain.tta import default_views
    from shoulders.explain.tta_rule import TTADecision

    # the measured rule keeps TTA off everywhere today; a run whose rule turns it on must be served with it
    monkeypatch.setattr(classifier_module, "tta_decision", lambda hflip: TTADecision(
        True, tuple(v.name for v in default_views(hflip)), "on for this test", 6.0))
    x, y, classes = colour_images(6)
    cfg = RunConfig()
    cfg.data.hflip = True  # trained with flips: the flipped views are among the run's views
    TransferClassifier(backbone=TINY, strategy="frozen", pretrained=False, image_size=32, progress=False,
                       config=cfg).fit(x, np.asarray(classes)[y], out_dir=tmp_path / "run")
    served = ServedModel(tmp_path / "run")
    assert served.views and len(served.views) > 1
    with TestClient(create_app(served)) as client:
        info = client.get("/info").json()
        assert info["tta"]["enabled"] and info["tta"]["views"] == [v.name for v in served.views]
        path = images["RGB"]
        got = client.post("/predict", files={"files": (path.name, path.read_bytes())}).json()
    assert_rows_match(got, TransferClassifier.load(tmp_path / "run").predict_top_k(str(path)), [path.name])
    plain = TransferClassifier.load(tmp_path / "run").predict_top_k(str(path), tta=False)
    assert got[0]["top_k"][0]["probability"] != plain[0]["top_k"][0]["probability"]  # the views changed it


def _png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png((20, 20))
BAD_INPUTS = {  # name → (request keyword arguments, status, words the message must contain)
    "not an image": (dict(files={"files": ("a.txt", b"just text")}), 415, "not an image"),
    "truncated": (dict(files={"files": ("cut.png", PNG[:60])}), 422, "cannot be decoded"),
    "empty file": (dict(files={"files": ("e.png", b"")}), 422, "empty (0 bytes)"),
    "empty body": (dict(), 400, "no images"),
    "wrong field name": (dict(files={"image": ("a.png", PNG)}), 400, "field(s) 'image'"),
    "text in the files field": (dict(data={"files": "a.png"}, files={"files": ("b.png", PNG)}), 400, "carries text"),
    "a form, not multipart": (dict(data={"files": "a.png"}), 415, "x-www-form-urlencoded"),
    "too many files": (dict(files=[("files", (f"{i}.png", PNG)) for i in range(4)]), 413, "the limit is 3"),
    "over the request size": (dict(files={"files": ("big.bin", b"\0" * 30_000)}), 413, "over the limit of 20,000"),
    "over the pixel limit": (dict(files={"files": ("wide.png", _png((200, 60)))}), 413, "12,000 pixels"),
    "bad base64": (dict(json={"images": [{"data": "@@@"}]}), 400, "not valid base64"),
    "wrong JSON field": (dict(json={"pictures": []}), 400, "images: Field required"),
    "broken JSON": (dict(content=b"{", headers={"content-type": "application/json"}), 400, "JSON body"),
    "wrong content type": (dict(content=b"xyz", headers={"content-type": "text/plain"}), 415, "text/plain"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_every_bad_input_is_a_4xx_json_error_and_the_server_lives_on(client: TestClient, case: str) -> None:
    kwargs, status, words = BAD_INPUTS[case]
    response = client.post("/predict", **kwargs)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert client.get("/health").json()["status"] == "ok"
    assert client.post("/predict", files={"files": ("ok.png", PNG)}).status_code == 200


def test_a_chunked_body_is_cut_off_at_the_size_limit(client: TestClient) -> None:
    """No Content-Length to refuse up front: the body is counted as it arrives (multipart and JSON alike)."""
    head = b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\n'
    bodies = {"multipart/form-data; boundary=b": iter([head] + [b"\0" * 5000] * 6 + [b"\r\n--b--\r\n"]),
              "application/json": iter([b'{"images": [{"data": "', b"A" * 30_000, b'"}]}'])}
    for content_type, chunks in bodies.items():
        response = client.post("/predict", content=chunks, headers={"content-type": content_type})
        assert response.request.headers.get("transfer-encoding") == "chunked"
        assert response.status_code == 413 and "over the limit of 20,000 bytes" in response.json()["detail"]
    assert client.get("/health").json()["status"] == "ok"


def test_bad_top_k_is_a_422(client: TestClient) -> None:
    response = client.post("/predict?top_k=0", files={"files": ("ok.png", PNG)})
    assert response.status_code == 422 and "top_k" in json.dumps(response.json())


def test_info_health_and_docs(client: TestClient, served: ServedModel) -> None:
    info = client.get("/info").json()
    assert info["classes"] == ["blue", "green", "red"] and info["backbone"] == TINY
    assert info["model_sha256"] == hashlib.sha256((served.run_dir / "model.safetensors").read_bytes()).hexdigest()
    assert info["input"]["size"] == [3, 32, 32] and info["strategy"] == "frozen"
    assert info["metrics"] == json.loads((served.run_dir / "metrics.json").read_text())
    assert info["precision"] == served.classifier.inference().precision.inference
    assert info["serving"]["limits"]["max_files"] == 3
    health = client.get("/health").json()
    assert health["model_loaded"] and health["worker_alive"]
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]["/predict"]["post"]["requestBody"]["content"]) == {"multipart/form-data",
                                                                                  "application/json"}
    assert client.get("/docs").status_code == 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_concurrent_requests_over_real_http_are_batched(served: ServedModel, images: dict[str, Path]) -> None:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(served, ServeSettings(port=port, max_wait_ms=100)),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        paths = list(images.values()) * 2
        url = f"http://127.0.0.1:{port}"

        def post(path: Path) -> httpx.Response:
            return httpx.post(f"{url}/predict", files={"files": (path.name, path.read_bytes())}, timeout=30)

        with ThreadPoolExecutor(len(paths)) as pool:
            responses = list(pool.map(post, paths))
        assert [r.status_code for r in responses] == [200] * len(paths)
        clf = TransferClassifier.load(served.run_dir)
        for path, response in zip(paths, responses):
            assert_rows_match(response.json(), clf.predict_top_k(str(path)), [path.name])
        stats = httpx.get(f"{url}/health").json()["batches"]
        assert stats["items"] >= len(paths) and stats["largest_batch"] > 1  # requests shared a forward
    finally:
        server.should_exit = True
        thread.join(10)


def test_sigterm_lets_the_request_in_flight_finish(run_dir: Path, images: dict[str, Path]) -> None:
    """`shoulders serve` in this process (the main thread, where uvicorn installs its signal handlers); a thread
    sends a request that waits 1.5 s in the batch window, then SIGTERM to the process."""
    port, path, results = free_port(), images["RGB"], {}
    url = f"http://127.0.0.1:{port}"
    passed_on: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda sig, frame: passed_on.append(sig))  # uvicorn re-raises to it

    def client() -> None:
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and "health" not in results:
                try:
                    results["health"] = httpx.get(f"{url}/health", timeout=1).status_code
                except httpx.TransportError:
                    time.sleep(0.1)
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(httpx.post, f"{url}/predict", files={"files": (path.name, path.read_bytes())},
                                      timeout=30)
                time.sleep(0.5)
                os.kill(os.getpid(), signal.SIGTERM)
                results["response"] = pending.result()
        finally:
            if "response" not in results:
                os.kill(os.getpid(), signal.SIGTERM)  # never leave the server running

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        rc = main(["serve", str(run_dir), "--port", str(port), "--max-wait-ms", "1500", "--no-access-log"])
    finally:
        signal.signal(signal.SIGTERM, previous)
        thread.join(30)
    assert rc == 0 and results["health"] == 200
    assert results["response"].status_code == 200 and results["response"].json()[0]["path"] == path.name
    assert passed_on == [signal.SIGTERM]  # uvicorn caught the signal, shut down, then passed it on
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=1)


def test_missing_or_damaged_run_folder_stops_at_start(tmp_path: Path, run_dir: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    assert main(["serve", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert f"run folder {tmp_path / 'nope'} does not exist" in err and "Traceback" not in err
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for f in run_dir.iterdir():
        (damaged / f.name).write_bytes(f.read_bytes())
    (damaged / "model.safetensors").write_bytes(b"\0" * 100)
    assert main(["serve", str(damaged)]) == 1
    assert "model.safetensors is damaged or truncated" in capsys.readouterr().err


def test_flags_are_checked_before_loading(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["serve", str(tmp_path), "--max-batch", "0"]) == 1
    assert "--max-batch is out of range" in capsys.readouterr().err


def test_without_the_serve_extra_the_command_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # what `import fastapi` finds when it is not installed
    assert main(["serve", str(tmp_path)]) == 1
    assert "pip install 'shoulders[serve]'" in capsys.readouterr().err
