"""TransferClassifier: every data source through fit, the run-folder round trip, prediction APIs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from shoulders import TransferClassifier
from shoulders.run_folder import MODEL_NAME, read_run

from conftest import TINY

RUN_FILES = {"model.safetensors", "config.json", "classes.json", "history.csv", "metrics.json", "split.json"}


def tiny_clf(strategy: str = "frozen", **kw) -> TransferClassifier:
    return TransferClassifier(backbone=TINY, strategy=strategy, pretrained=False, image_size=32, progress=False, **kw)


def test_fit_folder_save_load_gives_identical_predictions(tmp_path: Path, image_folder: Path) -> None:
    clf = tiny_clf("partial", epochs=1).fit(image_folder, out_dir=tmp_path / "run")
    assert RUN_FILES <= {p.name for p in (tmp_path / "run").iterdir()}
    assert not (tmp_path / "run" / "bad_images.json").exists()
    loaded = TransferClassifier.load(tmp_path / "run")
    images = sorted(str(p) for p in image_folder.rglob("*.png"))
    # the weights round-trip exactly; predictions agree up to float rounding (the trained model's tensors may sit in
    # another memory layout than freshly loaded ones, and oneDNN's kernels then round the last bit differently)
    saved, trained = loaded.model_.state_dict(), clf.model_.state_dict()
    assert saved.keys() == trained.keys()
    assert all(torch.equal(saved[k], trained[k].to(saved[k].device)) for k in saved)
    np.testing.assert_allclose(loaded.predict_proba(images), clf.predict_proba(images), rtol=1e-6, atol=1e-7)
    assert loaded.classes_ == clf.classes_ == ["blue", "green", "red"]
    assert list(loaded.predict(images[:2])) == list(clf.predict(images[:2]))


def test_run_folder_records_everything_resolved(tmp_path: Path, image_folder: Path) -> None:
    tiny_clf("frozen").fit(image_folder, out_dir=tmp_path / "run")
    run = read_run(tmp_path / "run")
    cfg = run["config"]
    assert cfg["config"]["model"]["backbone"] == TINY and cfg["weights"]["source"] == "random"
    assert cfg["data_config"]["input_size"] == [3, 32, 32]
    assert cfg["strategy"]["name"] == "frozen" and cfg["strategy"]["phases"][0]["trainable_blocks"] == []
    assert cfg["config"]["train"]["epochs"] == 30 and cfg["config"]["train"]["lr"] == 1e-3  # resolved, not None
    assert cfg["classes"] == run["classes"] == ["blue", "green", "red"]
    assert {"torch", "timm", "shoulders", "python"} <= set(cfg["versions"])
    assert 0.0 <= run["metrics"]["val_accuracy"] <= 1.0
    assert run["split"]["method"] == "stratified" and len(run["split"]["val_files"]) == 8  # ceil(20 % of 36)


def test_fit_arrays_and_predict_arrays(colour_arrays) -> None:
    x, y, classes = colour_arrays
    names = np.asarray(classes)[y]
    clf = tiny_clf("frozen").fit(x, names)
    assert clf.classes_ == ["blue", "green", "red"]
    assert clf.predict_proba(x).shape == (36, 3)
    assert clf.score(x, names) > 0.9


def test_fit_csv(tmp_path: Path, image_folder: Path) -> None:
    rows = [(str(p.relative_to(image_folder)), p.parent.name) for p in sorted(image_folder.rglob("*.png"))]
    with open(image_folder / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "label"), *rows])
    clf = tiny_clf("frozen").fit(image_folder / "labels.csv")
    assert clf.classes_ == ["blue", "green", "red"]


def test_train_val_test_folders_report_test_accuracy(tmp_path: Path, image_folder: Path) -> None:
    root = tmp_path / "split"
    for split in ("train", "test"):
        for cls_dir in image_folder.iterdir():
            (root / split / cls_dir.name).mkdir(parents=True)
            for i, img in enumerate(sorted(cls_dir.iterdir())):
                if (i < 8) == (split == "train"):
                    (root / split / cls_dir.name / img.name).write_bytes(img.read_bytes())
    clf = tiny_clf("frozen").fit(root)
    assert "test_accuracy" in clf.metrics_ and clf.metrics_["test_accuracy"] > 0.9


def test_bad_images_are_skipped_and_listed(tmp_path: Path, image_folder: Path) -> None:
    (image_folder / "red" / "broken.jpg").write_bytes(b"not an image at all")
    clf = tiny_clf("frozen").fit(image_folder, out_dir=tmp_path / "run")
    listed = json.loads((tmp_path / "run" / "bad_images.json").read_text())
    assert [Path(b["path"]).name for b in listed] == ["broken.jpg"]
    assert clf.bad_images_ == listed


def test_predict_top_k_rows(image_folder: Path) -> None:
    clf = tiny_clf("frozen").fit(image_folder)
    rows = clf.predict_top_k(image_folder / "red", k=2)
    assert len(rows) == 12
    assert set(rows[0]) == {"path", "label", "top_k"} and len(rows[0]["top_k"]) == 2
    assert rows[0]["label"] == rows[0]["top_k"][0]["label"]
    assert rows[0]["top_k"][0]["probability"] >= rows[0]["top_k"][1]["probability"]


def test_unfitted_and_damaged_errors(tmp_path: Path, image_folder: Path) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        tiny_clf().predict(["x.png"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TransferClassifier.load(tmp_path / "nowhere")
    tiny_clf("frozen").fit(image_folder, out_dir=tmp_path / "run")
    model = tmp_path / "run" / MODEL_NAME
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(ValueError, match="damaged or truncated"):
        TransferClassifier.load(tmp_path / "run")


def test_explicit_settings_override_the_plan(image_folder: Path) -> None:
    clf = tiny_clf("partial", epochs=1, lr=0.02, trainable_blocks=3, augment="light").fit(image_folder)
    cfg = clf.config_
    assert (cfg.train.epochs, cfg.train.lr, cfg.strategy.trainable_blocks, cfg.data.augment) == (1, 0.02, 3, "light")
    assert len(clf.strategy_["phases"][0]["trainable_blocks"]) == 3


@pytest.mark.slow
class TestRealWeights:
    """The one test class that uses the bundled ImageNet weights of the default backbone."""

    def test_imagenet_head_recognises_a_cat_photo(self, tmp_path: Path) -> None:
        skimage_data = pytest.importorskip("skimage.data")
        from PIL import Image

        Image.fromarray(skimage_data.chelsea()).save(tmp_path / "chelsea.png")
        clf = TransferClassifier.pretrained()
        assert clf.weights_.source == "bundled"
        top = clf.predict_top_k(tmp_path / "chelsea.png", k=3)[0]["top_k"]
        assert any("cat" in t["label"] for t in top), top

    def test_frozen_default_backbone_transfers_to_digits(self) -> None:
        from shoulders.data import load_digits_arrays

        x, y, _ = load_digits_arrays()
        torch.manual_seed(0)
        clf = TransferClassifier(strategy="frozen", image_size=32, progress=False).fit(x[:400], y[:400])
        assert clf.weights_.source == "bundled" and clf.metrics_["val_accuracy"] > 0.8
