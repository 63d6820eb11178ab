"""The studio's API through Starlette's test client: data summary, building a data set, uploads and their limits,
advice, training in a child process (cancel, resume), evaluation, export and prediction."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi", reason="the studio's web libraries are not installed (pip install '.[studio]')")
pytest.importorskip("multipart", reason="python-multipart is not installed (pip install '.[studio]')")
from fastapi.testclient import TestClient  # noqa: E402

from conftest import TINY  # noqa: E402
from shoulders.cli import main  # noqa: E402
from shoulders.classifier import TransferClassifier  # noqa: E402
from shoulders.studio import Settings, Studio, create_app  # noqa: E402
from shoulders.serve.uploads import UploadLimits  # noqa: E402
from shoulders.studio.jobs import train_command  # noqa: E402
from shoulders.studio.planning import train_takes_budget  # noqa: E402


OWN_PAGE = {"X-Shoulders-Studio": "1"}  # what the studio's page sends with every request


def png_bytes(colour: tuple[int, int, int], size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def settings(tmp_path: Path, tiny_weights: Path) -> Settings:
    return Settings(runs_dir=tmp_path / "runs", workspace=tmp_path / "ws", backbone=TINY, weights=str(tiny_weights),
                    image_size=32, device="cpu")


@pytest.fixture
def client(settings: Settings, image_folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    # one thread for the training child: on a loaded 2-core machine two OpenMP threads made each step of the tiny
    # model ~50x slower (a thread waiting for a descheduled peer), which is contention, not what is tested here
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # likewise for the advice, evaluation and export that run in this process
    settings.workspace.mkdir(parents=True)
    yield TestClient(create_app(Studio(settings, data=str(image_folder))), headers=OWN_PAGE)
    torch.set_num_threads(threads)


def wait_task(client: TestClient, path: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        task = client.get(path).json()
        if task["status"] != "running":
            return task
        time.sleep(0.3)
    raise AssertionError(f"{path} still running after {timeout} s")


def wait_run(client: TestClient, name: str, until: Any, timeout: float = 180) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = client.get(f"/api/runs/{name}").json()
        if until(run):
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {name} never reached the state: {run['status']}, log: {run['log'][-5:]}")


# -- data --------------------------------------------------------------------------------------------------------
def test_page_and_static_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "shoulders <span>studio</span>" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # offline: nothing from the network
    for script in ("studio.js", "runs.js"):  # both scripts the page loads
        assert f'<script src="/static/{script}">' in page.text
        js = client.get(f"/static/{script}")
        assert js.status_code == 200 and "https://" not in js.text and "http://" not in js.text.replace(
            "http://127.0.0.1", "")


def test_summary_counts_sizes_bad_images_and_duplicates(client: TestClient, image_folder: Path) -> None:
    (image_folder / "red" / "broken.png").write_bytes(b"not a png at all")
    (image_folder / "blue" / "copy.png").write_bytes((image_folder / "red" / "000.png").read_bytes())
    summary = client.get("/api/data").json()["summary"]
    counts = {c["name"]: c["count"] for c in summary["classes"]}
    assert counts == {"blue": 13, "green": 12, "red": 13}
    assert summary["sizes"]["min"] == [16, 16] and summary["sizes"]["common"] == [{"size": "16×16", "count": 37}]
    assert [Path(b["path"]).name for b in summary["bad_images"]] == ["broken.png"]
    duplicates = summary["duplicates"]
    assert len(duplicates["exact"]) == 1 and duplicates["counts"]["train_within"] == 1
    assert sorted(Path(m["image"]).name for m in duplicates["exact"][0]) == ["000.png", "copy.png"]
    assert "1 repeated training image" in duplicates["summary"]
    assert summary["problem"] is None  # bad files are skipped by training, so the set is still trainable


def test_summary_of_a_split_folder_and_a_csv(client: TestClient, tmp_path: Path) -> None:
    root = tmp_path / "split"
    for split, n in (("train", 4), ("test", 2)):
        for name, colour in (("cat", (200, 0, 0)), ("dog", (0, 0, 200))):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                (root / split / name / f"{i}.png").write_bytes(png_bytes((colour[0], i, colour[2])))
    summary = client.post("/api/data/open", json={"path": str(root)}).json()["summary"]
    assert summary["layout"] == "folders" and summary["splits"] == ["test", "train"]
    assert summary["classes"][0] == {"name": "cat", "count": 6, "splits": {"test": 2, "train": 4}, "bad": 0}
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\n" + "".join(f"split/train/{c}/{i}.png,{c}\n" for c in ("cat", "dog") for i in range(4)))
    summary = client.post("/api/data/open", json={"path": str(csv)}).json()["summary"]
    assert summary["layout"] == "csv" and [c["count"] for c in summary["classes"]] == [4, 4]
    assert summary["problem"] is None and client.get("/api/session").json()["data"] == str(csv)


def test_open_missing_folder_is_a_clear_404(client: TestClient, tmp_path: Path) -> None:
    r = client.post("/api/data/open", json={"path": str(tmp_path / "nowhere")})
    assert r.status_code == 404 and "does not exist" in r.json()["error"]
    (tmp_path / "notes.txt").write_text("hello")
    r = client.post("/api/data/open", json={"path": str(tmp_path / "notes.txt")})
    assert r.status_code == 400 and "neither a folder" in r.json()["error"]


def test_build_a_data_set_in_the_browser(client: TestClient, settings: Settings) -> None:
    summary = client.post("/api/data/new", json={"name": "pets"}).json()["summary"]
    assert summary["total"] == 0 and "no images yet" in summary["problem"]
    for name in ("cat", "dog"):
        client.post("/api/data/classes", json={"name": name})
    files = [("images", (f"c{i}.png", png_bytes((200, 10 * i, 0)), "image/png")) for i in range(3)]
    files.append(("images", ("notes.txt", b"just text", "text/plain")))
    r = client.post("/api/data/classes/cat/images", files=files).json()
    assert r["saved"] == ["c0.png", "c1.png", "c2.png"]
    assert len(r["rejected"]) == 1 and "'notes.txt' is not an image" in r["rejected"][0]["error"]
    counts = {c["name"]: c["count"] for c in r["summary"]["classes"]}
    assert counts == {"cat": 3, "dog": 0}
    assert "has no images" in r["summary"]["problem"]  # the library's own words about the empty class
    assert (settings.workspace / "pets" / "cat" / "c0.png").is_file()
    r = client.post("/api/data/classes/bird/images", files=[("images", ("b.png", png_bytes((0, 0, 0)), "image/png"))])
    assert r.status_code == 400 and "add the class first" in r.json()["error"]


def test_uploads_have_the_serve_limits_and_messages(settings: Settings, image_folder: Path) -> None:
    settings.upload_limits = UploadLimits(max_files=2, max_request_bytes=4000, max_pixels=40 * 40)
    settings.workspace.mkdir(parents=True)
    client = TestClient(create_app(Studio(settings, data=str(image_folder))), headers=OWN_PAGE)
    many = [("images", (f"r{i}.png", png_bytes((200, 0, 0)), "image/png")) for i in range(3)]
    r = client.post("/api/data/classes/red/images", files=many)
    assert r.status_code == 413 and "3 images in one request; the limit is 2" in r.json()["error"]
    big = [("images", ("big.png", png_bytes((9, 9, 9), 64), "image/png"))]
    r = client.post("/api/data/classes/red/images", files=big)
    assert "big.png' is 64×64 = 4,096 pixels; the limit is 1,600" in r.json()["rejected"][0]["error"]
    noise = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(noise, "PNG")
    r = client.post("/api/runs/none/predict", files={"image": ("noise.png", noise.getvalue() * 2, "image/png")})
    assert r.status_code == 413 and "over the limit of 4,000 bytes" in r.json()["detail"]
    r = client.post("/api/data/classes/red/images", files=[("images", ("empty.png", b"", "image/png"))])
    assert "'empty.png' is empty" in r.json()["rejected"][0]["error"]


# -- advise, train, cancel, resume, evaluate, export, try --------------------------------------------------------
def test_advice_runs_in_the_background_and_draws_the_matrix(client: TestClient) -> None:
    assert client.post("/api/advise", json={}).json()["status"] in ("running", "done")
    task = wait_task(client, "/api/advise")
    assert task["status"] == "done", task["error"]
    advice = task["result"]["advice"]
    assert advice["quadrant"] in (1, 2, 3, 4) and advice["size"]["classes"] == 3
    assert "similarity" in advice["measurements"] and advice["reasons"]
    matrix = client.get("/api/advice/matrix.png")
    assert matrix.status_code == 200 and matrix.content[:4] == b"\x89PNG"
    if not task["result"]["budget_table"]:
        pytest.skip("this shoulders has no planner table (shoulders.planner.plan_run.recipes_by_budget)")
    client.post("/api/advise/budget")
    table = wait_task(client, "/api/tasks/budget/table")
    assert table["status"] == "done", table["error"]
    rows = table["result"]
    assert [r["budget"] for r in rows][:2] == ["1 min", "2 min"]
    assert all(0 < r["expected_accuracy"] <= 1 and r["recipe"] and r["predicted"] for r in rows)


def test_train_cancel_resume_then_evaluate_export_and_try(client: TestClient, settings: Settings) -> None:
    run = client.post("/api/runs", json={"name": "r1", "strategy": "full", "epochs": "20"}).json()
    assert run["status"] == "running"
    wait_run(client, "r1", lambda r: (settings.runs_dir / "r1" / "checkpoint.pt").is_file())  # an epoch is saved
    assert client.post("/api/runs/r1/cancel").status_code == 200
    stopped = wait_run(client, "r1", lambda r: r["status"] not in ("running", "cancelling"))
    assert stopped["status"] == "cancelled" and stopped["resumable"] and not stopped["finished"]
    epochs_done = len(stopped["history"])
    assert 1 <= epochs_done < 20
    r = client.post("/api/runs/r1/evaluate")
    assert r.status_code == 400 and "no trained model yet" in r.json()["error"]
    assert client.post("/api/runs/r1/resume").json()["status"] == "running"
    done = wait_run(client, "r1", lambda r: r["status"] not in ("running", "cancelling"))
    assert done["status"] == "finished", done["log"]
    assert [row["epoch"] for row in done["history"]] == list(range(1, 21))
    assert any(line.startswith("epoch  20 ") for line in done["log"])  # the command's own lines, on the page
    assert 0 <= done["metrics"]["val_accuracy"] <= 1
    assert client.post("/api/runs", json={"name": "r1"}).status_code == 400  # the name is taken

    clf = TransferClassifier.load(settings.runs_dir / "r1")  # an ordinary run folder: the CLI reads it
    assert clf.classes_ == ["blue", "green", "red"]

    pred = client.post("/api/runs/r1/predict", files={"image": ("red.png", png_bytes((220, 0, 0)), "image/png")})
    body = pred.json()
    assert pred.status_code == 200 and body["label"] == body["top_k"][0]["label"]
    probs = [t["probability"] for t in body["top_k"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-4
    expected = clf.predict_top_k(np.asarray(Image.open(io.BytesIO(png_bytes((220, 0, 0)))))[None], k=3)[0]
    assert body["label"] == expected["label"]
    bad = client.post("/api/runs/r1/predict", files={"image": ("x.jpg", b"\xff\xd8 broken", "image/jpeg")})
    assert bad.status_code in (415, 422) and "'x.jpg'" in bad.json()["error"]

    assert client.post("/api/runs/r1/evaluate").status_code == 200
    ev = wait_task(client, "/api/tasks/evaluate/r1")
    assert ev["status"] == "done", ev["error"]
    assert ev["result"]["split"] == "val" and set(ev["result"]["metrics"]["per_class"]) == {"blue", "green", "red"}
    assert client.get("/api/runs/r1/files/report.html").status_code == 200
    assert client.get("/api/runs/r1/files/..%2Fr1%2Fconfig.json").status_code == 404

    client.post("/api/runs/r1/export", json={"format": "torchscript"})
    ex = wait_task(client, "/api/tasks/export/r1")
    assert ex["status"] == "done" and ex["result"]["passed"], ex
    download = client.get(f"/api/runs/r1/files/{ex['result']['file']}")
    assert download.status_code == 200 and len(download.content) > 1000
    assert {r["name"] for r in client.get("/api/runs").json()["runs"]} == {"r1"}


def test_only_the_own_page_changes_anything(settings: Settings, image_folder: Path) -> None:
    settings.workspace.mkdir(parents=True)
    app = create_app(Studio(settings, data=str(image_folder)), allowed_hosts=["127.0.0.1"])
    other_site = TestClient(app, base_url="http://127.0.0.1")
    r = other_site.post("/api/runs", data={"name": "x"})  # a form another web page could post here
    assert r.status_code == 403 and "own page" in r.json()["error"]
    assert other_site.get("/api/session").status_code == 200
    rebound = TestClient(app, base_url="http://evil.example", headers=OWN_PAGE)
    assert rebound.get("/api/session").status_code == 400  # a Host that is not this computer


def test_bad_training_requests_say_what_to_do(client: TestClient) -> None:
    r = client.post("/api/runs", json={"name": "../x"})
    assert r.status_code == 400 and "run name" in r.json()["error"]
    r = client.post("/api/runs", json={"epochs": "zero"})
    assert r.status_code == 400 and "whole number" in r.json()["error"]
    r = client.post("/api/runs", json={"strategy": "magic"})
    assert r.status_code == 400 and "auto, full, partial, frozen" in r.json()["error"]
    assert client.get("/api/runs/none").status_code == 404
    assert client.post("/api/advise/budget").status_code == 400  # no advice yet
    if not train_takes_budget():
        r = client.post("/api/runs", json={"budget": "10m"})
        assert r.status_code == 400 and "takes no --budget" in r.json()["error"]


def test_a_budget_goes_to_train(settings: Settings, image_folder: Path) -> None:
    if not train_takes_budget():
        pytest.skip("this shoulders train takes no --budget")
    options = Studio(settings, data=str(image_folder))._train_options({"budget": " 1h00m ", "epochs": ""})
    assert options["budget"] == "1h00m" and options["epochs"] is None
    argv = train_command("DATA", Path("r"), options)
    assert argv[argv.index("--budget") + 1] == "1h00m" and "--epochs" not in argv


def test_train_command_is_the_cli() -> None:
    argv = train_command("DATA", Path("runs/x"), {"strategy": "full", "epochs": 3, "quiet": True, "weights": None})
    assert argv[:3] == [sys.executable, "-m", "shoulders"]
    assert argv[3:] == ["train", "DATA", "--out", "runs/x", "--strategy", "full", "--epochs", "3", "--quiet"]


def test_cli_refuses_a_busy_port(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["studio", "--port", str(port), "--runs", str(tmp_path / "runs"),
                     "--workspace", str(tmp_path / "ws")])
    assert code == 1 and f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err


def test_a_run_that_just_exited_is_not_reported_interrupted(settings: Settings, image_folder: Path) -> None:
    """Between the training process's exit and its watcher recording the status, the job file still says
    running: the studio reads the exit code itself instead of calling the run "interrupted" (CI caught a poll there).
    """
    import subprocess

    from shoulders.run_folder import save_json
    from shoulders.studio.jobs import JOB_FILE, TrainJob

    studio = Studio(settings, data=str(image_folder))
    run_dir = settings.runs_dir / "r1"
    run_dir.mkdir(parents=True)
    save_json({"data": str(image_folder), "options": {}, "status": "running"}, run_dir / JOB_FILE)
    for code, expected in ((0, "finished"), (3, "failed")):
        job = TrainJob(run_dir, str(image_folder), {})
        job.process = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
        job.process.wait()  # exited; no watcher has written the job file
        studio.jobs["r1"] = job
        assert job.ended_status() == expected and studio.run("r1")["status"] == expected
    del studio.jobs["r1"]
    assert studio.run("r1")["status"] == "interrupted"  # no job of this studio: started by one that is gone
