"""Tests for shoulders.report: metrics equal scikit-learn's, figures are real PNGs, the page is self-contained."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

from shoulders.report import (
    compute_metrics,
    expected_calibration_error,
    plot_confusion_matrix,
    plot_history,
    plot_top_losses,
    render_report,
    top_losses,
    write_evaluation,
)

CLASSES = ["cat", "dog", "fox", "owl"]
Y_TRUE = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 0])
PROBA = np.array(
    [
        [0.70, 0.10, 0.10, 0.10],
        [0.20, 0.60, 0.10, 0.10],  # cat -> dog
        [0.40, 0.30, 0.20, 0.10],
        [0.10, 0.80, 0.05, 0.05],
        [0.50, 0.30, 0.10, 0.10],  # dog -> cat
        [0.05, 0.90, 0.03, 0.02],
        [0.10, 0.10, 0.70, 0.10],
        [0.10, 0.15, 0.25, 0.50],  # fox -> owl
        [0.02, 0.03, 0.05, 0.90],  # fox -> owl, very confident
        [0.10, 0.10, 0.10, 0.70],
        [0.25, 0.25, 0.25, 0.25],  # tie -> argmax picks cat
        [0.97, 0.01, 0.01, 0.01],
    ]
)
LABELS = list(range(len(CLASSES)))


def test_compute_metrics_matches_sklearn() -> None:
    m = compute_metrics(Y_TRUE, PROBA, CLASSES)
    y_pred = PROBA.argmax(axis=1)
    assert m["n_samples"] == 12 and m["n_classes"] == 4
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(Y_TRUE, y_pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(Y_TRUE, y_pred))
    p, r, f, s = skm.precision_recall_fscore_support(Y_TRUE, y_pred, labels=LABELS, zero_division=0)
    for i, name in enumerate(CLASSES):
        assert m["per_class"][name] == pytest.approx(
            {"precision": p[i], "recall": r[i], "f1": f[i], "support": s[i]}
        )
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = skm.precision_recall_fscore_support(Y_TRUE, y_pred, average=avg, zero_division=0)
        assert m[f"{avg}_avg"] == pytest.approx({"precision": ap, "recall": ar, "f1": af})
    # k=5 >= 4 classes is skipped: it would always be 1.
    assert set(m["top_k_accuracy"]) == {"1", "3"}
    for k in (1, 3):
        expected = skm.top_k_accuracy_score(Y_TRUE, PROBA, k=k, labels=LABELS)
        assert m["top_k_accuracy"][str(k)] == pytest.approx(expected)
    assert m["log_loss"] == pytest.approx(skm.log_loss(Y_TRUE, PROBA, labels=LABELS))
    assert m["confusion_matrix"] == skm.confusion_matrix(Y_TRUE, y_pred, labels=LABELS).tolist()
    np.testing.assert_allclose(
        m["confusion_matrix_normalized"], skm.confusion_matrix(Y_TRUE, y_pred, labels=LABELS, normalize="true")
    )
    assert m["most_confused"][0] == {"true": "fox", "predicted": "owl", "count": 2}
    assert [pair["count"] for pair in m["most_confused"]] == [2, 1, 1, 1]
    assert m == json.loads(json.dumps(m))  # JSON-ready, and unchanged by a round trip


def test_ece_hand_computed() -> None:
    # Bins of width 1/15: 0.91 and 0.93 share bin 13 (one right, one wrong), 0.7 sits alone in bin 10 (wrong).
    y = np.array([0, 1, 0])
    proba = np.array([[0.91, 0.09], [0.93, 0.07], [0.3, 0.7]])
    expected = 2 / 3 * abs(0.5 - 0.92) + 1 / 3 * abs(0.0 - 0.7)
    assert expected_calibration_error(y, proba) == pytest.approx(expected)
    assert compute_metrics(y, proba, ["a", "b"])["ece"] == pytest.approx(expected)
    # Perfectly calibrated certainty has no error.
    assert expected_calibration_error(np.array([0, 1]), np.array([[1.0, 0.0], [0.0, 1.0]])) == 0.0


def test_binary_top_k_and_bad_inputs() -> None:
    m = compute_metrics(np.array([0, 1, 1]), np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), ["no", "yes"])
    assert m["top_k_accuracy"] == {"1": pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match="3 columns but 4 classes"):
        compute_metrics(Y_TRUE, PROBA[:, :3], CLASSES)
    with pytest.raises(ValueError, match="outside"):
        compute_metrics(Y_TRUE + 1, PROBA, CLASSES)


def test_top_losses_order() -> None:
    items = top_losses(Y_TRUE, PROBA, k=4)
    # Wrong predictions by -log p_true: fox->owl (p_true .05), cat->dog (.2), then a tie at .25 kept in dataset
    # order (fox->owl at 7 before owl->cat at 10); dog->cat (.3) falls outside k=4.
    assert [it["index"] for it in items] == [8, 1, 7, 10]
    first = items[0]
    assert (first["true"], first["predicted"]) == (2, 3)
    assert first["p_pred"] == pytest.approx(0.9) and first["p_true"] == pytest.approx(0.05)
    assert first["loss"] == pytest.approx(-np.log(0.05))
    assert len(top_losses(Y_TRUE, PROBA, k=16)) == 5  # only the misclassified ones
    assert top_losses(np.array([0]), np.array([[0.9, 0.1]])) == []


def _check_png(path: Path) -> None:
    assert path.is_file()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= 300 and image.height >= 200


def _history_rows() -> list[dict[str, object]]:
    rows = []
    for epoch in range(1, 6):
        phase = "head" if epoch <= 2 else "finetune"
        rows.append({"epoch": epoch, "phase": phase, "lr": 1e-3, "train_loss": 1.5 / epoch,
                     "train_accuracy": 0.5 + 0.08 * epoch, "val_loss": 1.6 / epoch,
                     "val_accuracy": 0.45 + 0.08 * epoch, "seconds": 3.2})  # fmt: skip
    return rows


def _image(color: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (48, 40), color)


def test_plots_are_pngs(tmp_path: Path) -> None:
    _check_png(plot_history(_history_rows(), tmp_path / "curves.png"))
    cm = compute_metrics(Y_TRUE, PROBA, CLASSES)["confusion_matrix"]
    _check_png(plot_confusion_matrix(cm, CLASSES, tmp_path / "cm.png"))
    _check_png(plot_confusion_matrix(cm, CLASSES, tmp_path / "cm_counts.png", normalized=False))
    items = top_losses(Y_TRUE, PROBA, k=5)
    images = [_image((40 * i, 90, 160)) for i in range(len(items))]
    _check_png(plot_top_losses(images, items, CLASSES, tmp_path / "losses.png"))
    _check_png(plot_top_losses([], [], CLASSES, tmp_path / "none.png"))


def _write_run(run: Path, with_history: bool = True, with_advice: bool = True) -> Path:
    run.mkdir()
    config = {
        "backbone": "test_efficientnet",
        "weights": {"source": "file", "location": "https://example.org/w.safetensors", "sha256": "ab" * 32},
        "data_config": {"input_size": [3, 32, 32], "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406],
                        "std": [0.229, 0.224, 0.225], "crop_pct": 0.875, "crop_mode": "center"},
        "strategy": "partial", "strategy_params": {"unfreeze_fraction": 0.5},
        "classes": CLASSES, "train": {"epochs": 5, "lr": 0.001, "batch_size": 8}, "seed": 0,
        "versions": {"torch": "2.x", "timm": "1.x", "shoulders": "0.1.0"},
    }  # fmt: skip
    (run / "config.json").write_text(json.dumps(config))
    (run / "classes.json").write_text(json.dumps(CLASSES))
    (run / "metrics.json").write_text(json.dumps({"val_accuracy": 0.85, "test_accuracy": 0.8}))
    (run / "bad_images.json").write_text(json.dumps([{"path": "train/cat/broken.jpg", "reason": "truncated"}]))
    if with_history:
        with open(run / "history.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(_history_rows()[0]))
            writer.writeheader()
            writer.writerows(_history_rows())
    if with_advice:
        advice = {"quadrant": 3, "similarity": 0.71, "size": {"n_images": 240, "per_class_min": 55},
                  "plan": {"strategy": "partial", "epochs": 5},
                  "reasons": ["small dataset <b>similar</b> to ImageNet", "so fine-tune the top blocks"]}  # fmt: skip
        (run / "advice.json").write_text(json.dumps(advice))
    return run


SECTION_IDS = ("config", "advice", "curves", "metrics", "confusion", "top-losses")


def _assert_self_contained(text: str) -> None:
    for section in SECTION_IDS:
        assert f'id="{section}"' in text
    resources = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', text)
    assert resources and not [r for r in resources if re.match(r"(https?:)?//", r)]
    assert "<script" not in text and "@import" not in text


def test_render_report_full(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "run")
    images = {i: _image((200, 30 * (i % 8), 60)) for i in range(len(Y_TRUE))}
    evaluation = write_evaluation(run, Y_TRUE, PROBA, CLASSES, images.__getitem__, lambda i: f"test/{i}.jpg", "test")
    for name in ("evaluation.json", "confusion_matrix.png", "top_losses.png", "curves.png"):
        assert (run / name).is_file(), name
    assert evaluation["top_losses"][0]["description"] == "test/8.jpg"
    assert json.loads((run / "evaluation.json").read_text())["split"] == "test"

    text = render_report(run, evaluation).read_text()
    _assert_self_contained(text)
    assert text.count("data:image/png;base64,") == 3  # curves, confusion matrix, gallery
    assert "partial" in text and "unfreeze_fraction" in text and "bicubic" in text
    assert "&lt;b&gt;similar&lt;/b&gt;" in text and "<b>similar" not in text  # reasons are escaped
    assert "fox" in text and "test/8.jpg" in text and "broken.jpg" in text
    # Without the argument the page reads evaluation.json back and says the same.
    assert render_report(run, out=tmp_path / "again.html").read_text() == text


def test_render_report_missing_pieces(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "run", with_history=False, with_advice=False)
    (run / "metrics.json").write_text("{not json")
    text = render_report(run).read_text()
    _assert_self_contained(text)
    assert "no advice" in text and "No history.csv" in text and "No evaluation yet" in text
    assert "metrics.json could not be read" in text
    with pytest.raises(FileNotFoundError, match="does not exist"):
        render_report(tmp_path / "nowhere")


def test_render_report_inline_thumbnails_and_escaping(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    classes = ["<cat&dog>", "owl"]
    (run / "classes.json").write_text(json.dumps(classes))
    y, proba = np.array([0, 1]), np.array([[0.2, 0.8], [0.1, 0.9]])
    buffer = io.BytesIO()
    _image((10, 200, 10)).save(buffer, format="PNG")
    items = [{**top_losses(y, proba)[0], "path": "a.jpg", "image_png_b64": base64.b64encode(buffer.getvalue()).decode()}]
    evaluation = {"split": "val", "metrics": compute_metrics(y, proba, classes), "top_losses": items}
    text = render_report(run, evaluation).read_text()
    _assert_self_contained(text)
    assert "no readable config.json" in text
    assert '<div class="thumbs">' in text and "a.jpg" in text
    assert "&lt;cat&amp;dog&gt;" in text and "&amp;lt;" not in text and "<cat&dog>" not in text


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium for a headless screenshot")
def test_report_renders_in_browser(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "run")
    images = {i: _image((30 * (i % 8), 160, 90)) for i in range(len(Y_TRUE))}
    write_evaluation(run, Y_TRUE, PROBA, CLASSES, images.__getitem__, lambda i: f"img_{i}.png", "test")
    page = render_report(run)
    shot = tmp_path / "shot.png"
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2400",
        page.resolve().as_uri(),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    with Image.open(shot) as image:
        gray = np.asarray(image.convert("L"))
    assert gray.shape == (2400, 1280)
    assert (gray < 200).mean() > 0.02  # text and figures, not a blank page


def test_report_leads_with_results_and_folds_the_configuration(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config.update({"config": {"data": {"augment": "light", "batch_size": 8}, "model": {"backbone": "resnet50"},
                              "strategy": {"name": "partial"}, "train": {"epochs": 5, "lr": 0.001}},
                   "runtime": {"seconds": 42.0, "device": "cpu"},
                   "plan": {"strategy": "partial", "reasons": ["so fine-tune the top blocks"]},
                   "strategy": {"name": "partial", "phases": [{"phase": "finetune", "trainable_blocks": ["layer4"],
                                                               "frozen_blocks": ["layer1", "layer2", "layer3"],
                                                               "trainable_params": 1000}]}})
    (run / "config.json").write_text(json.dumps(config))
    images = {i: _image((200, 30 * (i % 8), 60)) for i in range(len(Y_TRUE))}
    maps = lambda indices, classes: [np.full((24, 24), 0.5, np.float32) for _ in indices]  # noqa: E731
    evaluation = write_evaluation(run, Y_TRUE, PROBA, CLASSES, images.__getitem__, str, "test", heatmaps=maps)
    assert evaluation["heatmaps"].startswith("Grad-CAM")
    text = render_report(run, evaluation).read_text()
    _assert_self_contained(text)
    order = [text.index(marker) for marker in ('class="cards"', "test accuracy", 'id="confusion"',
                                               'id="curves"', 'id="advice"', "<details>", 'id="config"')]
    assert order[:4] == sorted(order[:4]) and text.index('id="config"') > text.index('id="advice"')
    assert text.index("<details>") > text.index('id="config"')
    assert f"{Y_TRUE.size and evaluation['metrics']['accuracy']:.1%}" in text and "85.0%" in text
    assert "partial (trains 1 of 4 blocks, 1,000 parameters), light augmentation, 5 epochs" in text
    assert "42 s on cpu" in text
    assert text.count("so fine-tune the top blocks") == 1  # the advice's reasons, not repeated by the plan
    assert text.count("&quot;lr&quot;") + text.count(">lr<") == 1  # each setting once


def test_top_losses_gallery_with_heatmaps(tmp_path: Path) -> None:
    items = top_losses(Y_TRUE, PROBA)
    images = [_image((90, 90, 200)) for _ in items]
    plain = plot_top_losses(images, items, CLASSES, tmp_path / "plain.png")
    heat = [np.linspace(0, 1, 24 * 24, dtype=np.float32).reshape(24, 24) for _ in items]
    with_maps = plot_top_losses(images, items, CLASSES, tmp_path / "maps.png", heatmaps=heat)
    def hot(path: Path) -> int:  # the jet colour map's red end, which the blue-grey images never reach
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB")).astype(int)
        return int((rgb[..., 0] - rgb[..., 2] > 60).sum())

    assert hot(plain) == 0 and hot(with_maps) > 100  # a heatmap panel beside each image
    with pytest.raises(ValueError, match="heatmaps for"):
        plot_top_losses(images, items, CLASSES, tmp_path / "bad.png", heatmaps=heat[:1])
    evaluation = write_evaluation(tmp_path / "run", Y_TRUE, PROBA, CLASSES, lambda i: images[0], str, "val")
    assert "pip install" in evaluation["heatmaps"]  # no maker: the gallery says how to get them
