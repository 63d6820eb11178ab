"""Leakage: duplicate content within train and across train / val / test is reported, listed and dropped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shoulders.cli import main
from shoulders.data import load_data
from shoulders.data.duplicates import near_duplicates_available

from conftest import TINY, colour_images


@pytest.fixture
def split_folder(tmp_path: Path) -> Path:
    """DATA/{train,val,test}/<class>/*.png, all images distinct: 8 / 3 / 3 per class."""
    x, y, classes = colour_images(14, seed=3)
    root = tmp_path / "data"
    for i, (img, label) in enumerate(zip(x, y)):
        k = i % 14
        split = "train" if k < 8 else "val" if k < 11 else "test"
        folder = root / split / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:03d}.png")
    return root


def _plant(root: Path) -> tuple[Path, Path]:
    """Copies one training image into test (another name) and repeats one within train."""
    source = sorted((root / "train" / "red").iterdir())[0]
    copy = root / "test" / "red" / "copied.png"
    shutil.copy(source, copy)
    shutil.copy(sorted((root / "train" / "blue").iterdir())[0], root / "train" / "blue" / "again.png")
    return source, copy


def test_no_duplicates_in_distinct_data(split_folder: Path) -> None:
    splits = load_data(split_folder)
    assert not splits.duplicates.found and splits.duplicates.summary() == ""
    assert (len(splits.train), len(splits.val), len(splits.test)) == (24, 9, 9)


def test_planted_copy_across_train_and_test_is_reported_and_dropped(split_folder: Path) -> None:
    source, copy = _plant(split_folder)
    splits = load_data(split_folder)
    report = splits.duplicates
    assert report.counts["test_in_train"] == 1 and report.counts["train_within"] == 1
    assert report.counts["dropped_test"] == 1 and report.counts["dropped_val"] == 0
    assert len(splits.test) == 9 and str(copy) not in splits.test.paths  # 10 listed, the copy dropped
    assert len(splits.train) == 25  # a repeat within train is reported, not removed
    group = next(g for g in report.groups if {m["split"] for m in g} == {"train", "test"})
    assert {m["image"] for m in group} == {str(source), str(copy)}
    assert "1 test image(s) also in train" in report.summary() and "dropped 1 from test" in report.summary()


def test_keep_and_error_policies(split_folder: Path) -> None:
    _, copy = _plant(split_folder)
    kept = load_data(split_folder, on_duplicate="keep")
    assert str(copy) in kept.test.paths and kept.duplicates.counts["dropped_test"] == 0
    assert "kept" in kept.duplicates.summary()
    with pytest.raises(ValueError, match="same content.*on_duplicate='drop'"):
        load_data(split_folder, on_duplicate="error")
    with pytest.raises(ValueError, match="on_duplicate must be one of drop, keep, error"):
        load_data(split_folder, on_duplicate="remove")


def test_val_made_from_a_pool_with_copies_drops_the_copies(colour_arrays) -> None:
    x, y, _ = colour_arrays
    x = np.concatenate([x, x[:6]])  # six images twice: stratified splitting puts some pairs across train/val
    y = np.concatenate([y, y[:6]])
    splits = load_data(x, y, seed=1)
    c = splits.duplicates.counts
    assert c["train_within"] + c["val_in_train"] + c["dropped_val"] > 0
    assert c["dropped_val"] == c["val_in_train"]
    train_prints = {splits.train.fingerprint(i) for i in range(len(splits.train))}
    assert not train_prints & {splits.val.fingerprint(i) for i in range(len(splits.val))}


def test_every_validation_image_a_copy_is_a_clear_error(tmp_path: Path, split_folder: Path) -> None:
    shutil.rmtree(split_folder / "val")
    shutil.copytree(split_folder / "train", split_folder / "val")
    with pytest.raises(ValueError, match="every validation image .* is also a training image"):
        load_data(split_folder)


@pytest.mark.skipif(not near_duplicates_available(), reason="imagehash is not installed (optional)")
def test_near_duplicate_reencoded_copy_is_reported(split_folder: Path) -> None:
    source = sorted((split_folder / "train" / "green").iterdir())[0]
    Image.open(source).convert("RGB").resize((24, 24)).save(split_folder / "val" / "green" / "resized.jpg",
                                                            quality=80)
    splits = load_data(split_folder, near_duplicates=True)
    near = splits.duplicates.to_dict()["near"]
    assert any(p["b"]["image"].endswith("resized.jpg") and p["a"]["image"] == str(source) for p in near)
    assert str(split_folder / "val" / "green" / "resized.jpg") in splits.val.paths  # reported, not dropped


def test_train_cli_writes_duplicates_json_and_says_so(capsys, tmp_path: Path, split_folder: Path) -> None:
    _, copy = _plant(split_folder)
    out_dir = tmp_path / "run"
    code = main(["train", str(split_folder), "--out", str(out_dir), "--backbone", TINY, "--no-pretrained",
                 "--image-size", "32", "--quiet", "--strategy", "frozen"])
    out = capsys.readouterr().out
    assert code == 0
    assert "leakage    duplicate content: 1 test image(s) also in train" in out and "duplicates.json" in out
    saved = json.loads((out_dir / "duplicates.json").read_text())
    assert saved["policy"] == "drop" and saved["counts"]["dropped_test"] == 1
    assert any(m["image"] == str(copy) for g in saved["exact"] for m in g)
    assert json.loads((out_dir / "metrics.json").read_text())["test_images"] == 9
