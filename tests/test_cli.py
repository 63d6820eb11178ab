"""The command line: each subcommand end to end on tiny data, and clear errors without tracebacks."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from shoulders.cli import main

from conftest import TINY


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def train(capsys, data: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    return run(capsys, "train", str(data), "--out", str(out), "--backbone", TINY, "--no-pretrained",
               "--image-size", "32", "--quiet", *extra)


def test_zoo_lists_backbones_and_offline_weights(capsys) -> None:
    code, out, _ = run(capsys, "zoo")
    assert code == 0
    line = next(l for l in out.splitlines() if l.startswith("tf_efficientnet_lite0"))
    assert "offline" in line and "224" in line
    code, out, _ = run(capsys, "zoo", "--json")
    rows = json.loads(out)
    assert {"vgg16", "resnet50", "inception_v3", "tf_efficientnet_lite0"} <= {r["name"] for r in rows}


def test_train_writes_run_folder_and_prints_summary(capsys, tmp_path: Path, image_folder: Path) -> None:
    code, out, _ = train(capsys, image_folder, tmp_path / "run", "--strategy", "partial", "--trainable-blocks", "2",
                         "--epochs", "1")
    assert code == 0
    assert "strategy   partial" in out and "blocks.3, blocks.4, conv_head, bn2" in out
    assert "val acc" in out
    assert {"model.safetensors", "config.json", "history.csv", "metrics.json"} <= {
        p.name for p in (tmp_path / "run").iterdir()}


def test_predict_json_and_csv(capsys, tmp_path: Path, image_folder: Path) -> None:
    train(capsys, image_folder, tmp_path / "run", "--strategy", "frozen")
    code, out, _ = run(capsys, "predict", str(tmp_path / "run"), str(image_folder / "red"),
                       str(image_folder / "blue" / "*.png"), "--top-k", "2", "--json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 24
    assert set(rows[0]) == {"path", "label", "top_k"}
    assert [set(t) for t in rows[0]["top_k"]] == [{"label", "probability"}] * 2
    code, out, _ = run(capsys, "predict", str(tmp_path / "run"), str(image_folder / "red"), "--format", "csv")
    table = list(csv.reader(io.StringIO(out)))
    assert table[0][:4] == ["path", "label", "label_1", "probability_1"] and len(table) == 13


def test_evaluate_writes_metrics_figures_and_report(capsys, tmp_path: Path, image_folder: Path) -> None:
    train(capsys, image_folder, tmp_path / "run", "--strategy", "frozen")
    code, out, _ = run(capsys, "evaluate", str(tmp_path / "run"), str(image_folder))
    assert code == 0 and "accuracy" in out and "36 images" in out
    for name in ("evaluation.json", "confusion_matrix.png", "report.html"):
        assert (tmp_path / "run" / name).exists(), name
    code, out, _ = run(capsys, "evaluate", str(tmp_path / "run"), str(image_folder), "--json", "--no-report")
    assert json.loads(out)["per_class"].keys() == {"blue", "green", "red"}


def test_export_onnx_with_parity(capsys, tmp_path: Path, image_folder: Path) -> None:
    pytest.importorskip("onnxruntime")
    train(capsys, image_folder, tmp_path / "run", "--strategy", "frozen")
    code, out, _ = run(capsys, "export", str(tmp_path / "run"), "--format", "onnx")
    assert code == 0 and "parity" in out
    spec = json.loads((tmp_path / "run" / "model.json").read_text())
    assert spec["classes"] == ["blue", "green", "red"] and spec["input"]["size"] == [3, 32, 32]


@pytest.mark.parametrize("argv, message", [
    (["train", "/no/such/dir", "--out", "x"], "does not exist"),
    (["train", ".", "--out", "x", "--backbone", "resnet5"], "did you mean"),
    (["predict", "/no/such/run", "img.png"], "/no/such/run"),
    (["evaluate", "/no/such/run", "."], "does not exist"),
])
def test_bad_input_is_one_clear_line_not_a_traceback(capsys, argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert err.startswith("shoulders: error:") and message in err
    assert "Traceback" not in err


def test_train_on_single_class_names_the_folder(capsys, tmp_path: Path, image_folder: Path) -> None:
    for d in ("green", "blue"):
        for f in (image_folder / d).iterdir():
            f.unlink()
        (image_folder / d).rmdir()
    code, _, err = train(capsys, image_folder, tmp_path / "run", "--strategy", "frozen")
    assert code == 1 and "one class" in err and str(image_folder) in err


def test_demo_on_digits_beats_nothing_and_reports_baseline(capsys, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "demo", "--dataset", "digits", "--strategy", "frozen", "--image-size", "32",
                       "--out", str(tmp_path / "demo"), "--quiet")
    assert code == 0
    assert "from-pixels baseline" in out and "digits: 1437 training images, 360 held-out" in out
    assert (tmp_path / "demo" / "model.safetensors").exists()
