"""Tests for shoulders.data: sources, splits, bad images, image conversion, transforms, loaders, built-ins."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import timm
import timm.data
import torch
from PIL import Image

from shoulders.data import (
    BadImageError,
    ImageDataset,
    Samples,
    collect_paths,
    create_transforms,
    fashion_mnist_available,
    list_augmentations,
    load_data,
    load_digits_arrays,
    load_fashion_mnist,
    load_photos_arrays,
    make_loader,
    open_image,
    resolve_data_config,
    write_image_folder,
)
from shoulders.data import loader as loader_module

RNG = np.random.default_rng(0)


def _png(path: Path, size: int = 8, value: int | None = None, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    pixels = RNG.integers(0, 256, shape, dtype=np.uint8) if value is None else np.full(shape, value, np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _folder(root: Path, counts: dict[str, int], ext: str = "png") -> Path:
    for name, n in counts.items():
        for i in range(n):
            _png(root / name / f"{i}.{ext}")
    return root


# ---------------------------------------------------------------- sources and splits


def test_folder_stratified_split_ignores_non_images(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data", {"cat": 5, "dog": 5, "fox": 5})
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".DS_Store").write_bytes(b"\0\1")
    (root / "cat" / "._0.png").write_bytes(b"apple double fork")  # hidden: ignored although it ends in .png
    splits = load_data(root, val_fraction=0.2, seed=3)
    assert splits.classes == ["cat", "dog", "fox"]
    assert len(splits.train) + len(splits.val) == 15 and splits.test is None
    assert splits.bad_images == []
    assert set(splits.val.labels.tolist()) == {0, 1, 2}  # every class in val
    assert splits.split["method"] == "stratified" and splits.split["seed"] == 3
    assert sorted(splits.split["val_files"]) == sorted(splits.val.paths)
    assert not set(splits.train.paths) & set(splits.val.paths)
    again = load_data(root, val_fraction=0.2, seed=3)
    assert again.val.paths == splits.val.paths  # same seed, same split
    other = [load_data(root, val_fraction=0.2, seed=s).val.paths for s in range(1, 6)]
    assert any(paths != splits.val.paths for paths in other)


def test_folder_with_train_val_test(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _folder(root / "train", {"a": 3, "b": 3})
    _folder(root / "val", {"a": 1, "b": 1})
    _folder(root / "test", {"b": 2})
    splits = load_data(root)
    assert splits.classes == ["a", "b"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (6, 2, 2)
    assert splits.split["method"] == "folders" and splits.split["has_test"]
    assert splits.test.counts() == {"a": 0, "b": 2}
    _png(root / "test" / "c" / "0.png")
    with pytest.raises(ValueError, match="class.*c.*train does not have"):
        load_data(root)


def test_folder_train_and_test_only_makes_val(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _folder(root / "train", {"a": 4, "b": 4})
    _folder(root / "test", {"a": 1, "b": 1})
    splits = load_data(root, val_fraction=0.25)
    assert splits.split["method"] == "stratified" and splits.split["given"] == "folders"
    assert len(splits.val) == 2 and len(splits.test) == 2


def test_csv_without_and_with_split(tmp_path: Path) -> None:
    _folder(tmp_path / "img", {"x": 4, "y": 4})
    rows = [f"img/{c}/{i}.png,{c}" for c in "xy" for i in range(4)]
    plain = tmp_path / "plain.csv"
    plain.write_text("path,label\n" + "\n".join(rows) + "\n")
    splits = load_data(plain, val_fraction=0.25, seed=0)
    assert splits.classes == ["x", "y"] and len(splits.val) == 2
    assert all(os.path.isabs(p) for p in splits.train.paths)  # resolved against the CSV's folder
    with_split = tmp_path / "split.csv"
    tags = ["train", "train", "val", "test"] * 2
    with_split.write_text("path,label,split\n" + "\n".join(f"{r},{t}" for r, t in zip(rows, tags)) + "\n")
    splits = load_data(with_split)
    assert splits.split["method"] == "csv"
    assert (len(splits.train), len(splits.val), len(splits.test)) == (4, 2, 2)


def test_csv_errors_and_missing_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _folder(tmp_path / "img", {"x": 3, "y": 3})
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("file,label\nimg/x/0.png,x\n")
    with pytest.raises(ValueError, match=r"bad\.csv.*lacks column\(s\) path"):
        load_data(bad_header)
    rows = [f"img/{c}/{i}.png,{c}" for c in "xy" for i in range(3)] + ["img/x/gone.png,x", "img/y/gone.png,y"]
    missing = tmp_path / "missing.csv"
    missing.write_text("path,label\n" + "\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="shoulders.data"):
        splits = load_data(missing, val_fraction=0.34)
    assert len(splits.train) + len(splits.val) == 6
    assert [b.reason for b in splits.bad_images] == ["file not found"] * 2
    assert "skipped 2 missing file(s)" in caplog.text
    with pytest.raises(ValueError, match=r"2 file\(s\) listed in .*missing\.csv do not exist: .*gone\.png"):
        load_data(missing, on_bad_image="error")


def test_arrays_uint8_gray_and_float_rgb() -> None:
    x = RNG.integers(0, 256, (20, 8, 8), dtype=np.uint8)
    y = np.repeat(np.arange(4), 5)
    splits = load_data(x, y, val_fraction=0.2, seed=1)
    assert splits.classes == ["0", "1", "2", "3"]
    assert splits.split["array_scaling"]["rule"] == "as is"
    assert sorted(splits.split["val_indices"]) == splits.split["val_indices"] and len(splits.val) == 4
    i = splits.split["val_indices"][0]
    assert np.array_equal(np.asarray(splits.val.load(0))[..., 0], x[i])
    assert splits.val.describe(0) == "array[0]"

    xf = RNG.random((20, 8, 8, 3))
    splits = load_data(xf, [str(v) for v in ["b", "a"] * 10])
    assert splits.classes == ["a", "b"] and splits.split["array_scaling"]["rule"] == "x*255"
    assert splits.train.arrays.dtype == np.uint8 and splits.train.arrays.shape[1:] == (8, 8, 3)
    digits = load_data(np.arange(20 * 4, dtype=np.float64).reshape(20, 2, 2), y)
    assert digits.split["array_scaling"]["rule"] == "x*255/max"
    assert int(max(digits.train.arrays.max(), digits.val.arrays.max())) == 255


def test_arrays_shape_errors() -> None:
    y = [0, 1] * 3
    with pytest.raises(ValueError, match="channels-first"):
        load_data(np.zeros((6, 3, 8, 8), np.uint8), y)
    with pytest.raises(ValueError, match="one per image"):
        load_data(np.zeros((6, 8, 8), np.uint8), y[:4])
    with pytest.raises(ValueError, match="needs labels"):
        load_data(np.zeros((6, 8, 8), np.uint8))
    single = load_data(np.zeros((6, 8, 8, 1), np.uint8), y, on_duplicate="keep")  # identical images on purpose
    assert single.train.arrays.ndim == 3


def test_max_per_class_caps_train_only() -> None:
    x = np.zeros((60, 4, 4), np.uint8)
    y = np.repeat([0, 1, 2], 20)
    splits = load_data(x, y, val_fraction=0.25, seed=0, max_per_class=5, on_duplicate="keep")
    assert splits.train.counts() == {"0": 5, "1": 5, "2": 5}
    assert len(splits.val) == 15 and splits.split["max_per_class"] == 5
    again = load_data(x, y, val_fraction=0.25, seed=0, max_per_class=5, on_duplicate="keep")
    assert np.array_equal(again.train.labels, splits.train.labels)


def test_a_drawn_validation_set_holds_at_most_val_max_images_stratified() -> None:
    x = RNG.integers(0, 256, (3000, 6, 6), dtype=np.uint8)
    y = np.repeat([0, 1, 2], 1000)
    capped = load_data(x, y, val_fraction=0.2, val_max=300, seed=0)
    assert (len(capped.val), len(capped.train)) == (300, 2700)  # not 600: the rest trains
    assert capped.val.counts() == {"0": 100, "1": 100, "2": 100} and capped.split["val_max"] == 300
    assert len(load_data(x, y, val_fraction=0.2, val_max=None, seed=0).val) == 600
    assert len(load_data(x, y, val_fraction=0.05, val_max=300, seed=0).val) == 150  # under the cap: the fraction
    assert len(load_data(x, y, val_max=2, seed=0).val) == 3  # still one image per class
    assert len(load_data(x[:20], np.arange(20) % 2, seed=0).val) == 4  # the default cap (5 000) leaves small data as it was
    for bad in (0, -3, 2.5, "100", True):
        with pytest.raises(ValueError, match="val_max must be a whole number of images"):
            load_data(x, y, val_max=bad)


def _bad_files(class_dir: Path) -> list[Path]:
    class_dir.mkdir(parents=True, exist_ok=True)
    empty = class_dir / "empty.png"
    empty.write_bytes(b"")
    noise = class_dir / "noise.jpg"
    noise.write_bytes(RNG.integers(0, 256, 300, dtype=np.uint8).tobytes())
    good = _png(class_dir / "whole.png", size=32).read_bytes()
    truncated = class_dir / "truncated.png"
    truncated.write_bytes(good[: len(good) // 2])
    return [empty, noise, truncated]


def test_bad_images_skipped_or_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _folder(tmp_path / "data", {"a": 3, "b": 3})
    bad = _bad_files(root / "a")
    with caplog.at_level(logging.WARNING, logger="shoulders.data"):
        splits = load_data(root, val_fraction=0.3)
    assert sorted(b.path for b in splits.bad_images) == sorted(str(p) for p in bad)
    assert len(splits.train) + len(splits.val) == 7  # 3 + whole.png + 3
    assert "skipped 3 unreadable image(s)" in caplog.text
    with pytest.raises(BadImageError, match="cannot read image .*(empty|noise|truncated)") as info:
        load_data(root, on_bad_image="error")
    assert info.value.path in {str(p) for p in bad} and "on_bad_image='skip'" in str(info.value)


def test_image_that_breaks_after_scan_raises_on_load(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data", {"a": 2, "b": 2})
    splits = load_data(root, val_fraction=0.5)
    Path(splits.train.paths[0]).write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(BadImageError, match=splits.train.paths[0]):
        splits.train.load(0)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "no images found in"),
        ({"a": 2, "b": 0}, r"class folder .*b has no images"),
        ({"only": 3}, r"only one class \(only\)"),
        ({"a": 3, "b": 1}, r"class 'b' has only 1 image .*stratified"),
    ],
)
def test_source_errors_name_the_directory(tmp_path: Path, layout: dict[str, int], message: str) -> None:
    root = tmp_path / "data"
    root.mkdir()
    for name, n in layout.items():
        (root / name).mkdir()
        _folder(root, {name: n})
    with pytest.raises(ValueError, match=message) as info:
        load_data(root)
    assert str(root) in str(info.value)


def test_more_source_errors(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    _folder(mixed / "train", {"a": 2, "b": 2})
    _folder(mixed, {"extra": 1})
    with pytest.raises(ValueError, match=r"mixes split folders .*extra"):
        load_data(mixed)
    all_bad = _folder(tmp_path / "allbad", {"a": 3})
    _bad_files(all_bad / "b")
    (all_bad / "b" / "whole.png").unlink()
    with pytest.raises(ValueError, match=r"class\(es\) b .*no readable images"):
        load_data(all_bad)
    _folder(tmp_path / "img", {"x": 2})
    odd = tmp_path / "odd.csv"
    odd.write_text("path,label,split\nimg/x/0.png,x,holdout\n")
    with pytest.raises(ValueError, match=r"odd\.csv, line 2: split 'holdout'"):
        load_data(odd)
    with pytest.raises(ValueError, match="val_fraction"):
        load_data(all_bad, val_fraction=1.0)
    with pytest.raises(ValueError, match="on_bad_image"):
        load_data(all_bad, on_bad_image="ignore")
    with pytest.raises(ValueError, match="does not exist"):
        load_data(tmp_path / "absent")


def test_samples_fingerprint_counts_and_source(tmp_path: Path) -> None:
    first = _png(tmp_path / "one.png")
    copy = tmp_path / "copy.png"
    copy.write_bytes(first.read_bytes())
    other = _png(tmp_path / "two.png")
    samples = Samples(["a", "b"], [0, 1, 1], paths=[str(first), str(copy), str(other)])
    assert samples.fingerprint(0) == samples.fingerprint(1) != samples.fingerprint(2)
    assert samples.counts() == {"a": 1, "b": 2} and samples.describe(2) == str(other)
    assert len(samples.subset([2, 0])) == 2 and samples.subset([2, 0]).paths[0] == str(other)
    arrays = Samples(["a", "b"], [0, 1], arrays=np.zeros((2, 4, 4), np.uint8))
    assert arrays.fingerprint(0) == arrays.fingerprint(1)
    splits = load_data(Samples(["a", "b"], [0, 0, 1, 1], paths=[str(first), str(copy), str(other), str(other)]),
                       val_fraction=0.5, on_duplicate="keep")
    assert splits.split["source"] == "samples" and len(splits.split["val_files"]) == 2


# ---------------------------------------------------------------- open_image


def _pixel(path: Path, xy: tuple[int, int] = (0, 0)) -> tuple[int, ...]:
    img = open_image(path)
    assert img.mode == "RGB"
    return img.getpixel(xy)


def test_open_image_modes(tmp_path: Path) -> None:
    Image.new("L", (4, 4), 77).save(tmp_path / "l.png")
    assert _pixel(tmp_path / "l.png") == (77, 77, 77)
    Image.new("RGBA", (4, 4), (10, 20, 30, 0)).save(tmp_path / "clear.png")
    assert _pixel(tmp_path / "clear.png") == (255, 255, 255)  # fully transparent → white
    Image.new("LA", (4, 4), (0, 128)).save(tmp_path / "la.png")
    assert abs(_pixel(tmp_path / "la.png")[0] - 127) <= 1  # half-transparent black on white
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.save(tmp_path / "p.png")
    assert _pixel(tmp_path / "p.png") == (0, 0, 255)
    palette.save(tmp_path / "p_clear.png", transparency=1)
    assert _pixel(tmp_path / "p_clear.png") == (255, 255, 255)
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=100)
    red = _pixel(tmp_path / "cmyk.jpg")
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def test_open_image_16_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as raw:
        assert raw.mode.startswith("I")
    values = np.asarray(open_image(tmp_path / "deep.png"))[0, :, 0]
    assert values.tolist() == [0, 4, 128, 255]


def test_open_image_applies_exif_orientation(tmp_path: Path) -> None:
    img = Image.new("RGB", (6, 2), (0, 0, 0))
    img.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    img.save(tmp_path / "rot.jpg", exif=exif, quality=100)
    shown = open_image(tmp_path / "rot.jpg")
    assert shown.size == (2, 6)
    assert shown.getpixel((1, 0))[0] > 200  # top-left pixel moved to the top-right


def test_open_image_errors(tmp_path: Path) -> None:
    with pytest.raises(BadImageError, match="nowhere.png"):
        open_image(tmp_path / "nowhere.png")
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(BadImageError) as info:
        open_image(tmp_path / "text.jpg")
    assert info.value.path == str(tmp_path / "text.jpg") and info.value.reason


# ---------------------------------------------------------------- transforms and loaders


@pytest.fixture(scope="module")
def lite_config() -> dict:
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    return resolve_data_config(model, image_size=32)


def test_resolve_data_config_uses_model_cfg(lite_config: dict) -> None:
    assert lite_config == {
        "input_size": [3, 32, 32], "interpolation": "bicubic", "mean": [0.5] * 3, "std": [0.5] * 3,
        "crop_pct": 0.875, "crop_mode": "center",
    }
    tiny = resolve_data_config(timm.create_model("test_efficientnet", num_classes=0), crop_pct=1.0)
    assert tiny["mean"] == pytest.approx([0.485, 0.456, 0.406]) and tiny["crop_pct"] == 1.0
    with pytest.raises(ValueError, match="crop_pct"):
        resolve_data_config(timm.create_model("test_efficientnet", num_classes=0), crop_pct=1.5)


def test_eval_transform_matches_timm_and_normalises_once(lite_config: dict) -> None:
    _, evaluate = create_transforms(lite_config)
    image = Image.fromarray(RNG.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    reference = timm.data.create_transform(
        input_size=(3, 32, 32), interpolation="bicubic", mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=0.875,
        is_training=False,
    )
    assert torch.equal(evaluate(image), reference(image))
    gray = evaluate(Image.new("RGB", (40, 40), (128, 128, 128)))
    assert gray.shape == (3, 32, 32)
    assert torch.allclose(gray, torch.full_like(gray, (128 / 255 - 0.5) / 0.5), atol=1e-5)


def test_small_images_are_upsampled(lite_config: dict) -> None:
    config = dict(lite_config, input_size=[3, 64, 64])
    train, evaluate = create_transforms(config, augment="light")
    small = Image.fromarray(RNG.integers(0, 256, (28, 28, 3), dtype=np.uint8))
    assert evaluate(small).shape == (3, 64, 64) and train(small).shape == (3, 64, 64)


def test_augment_presets_change_train_only(lite_config: dict) -> None:
    assert list_augmentations() == ["none", "light", "strong"]
    image = Image.fromarray(RNG.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    train_none, eval_none = create_transforms(lite_config, "none")
    assert train_none is eval_none
    for preset in ("light", "strong"):
        torch.manual_seed(0)
        train, evaluate = create_transforms(lite_config, preset)
        assert torch.equal(evaluate(image), eval_none(image))
        assert train(image).shape == (3, 32, 32)
        assert not any(torch.equal(train(image), eval_none(image)) for _ in range(3))
        assert "HorizontalFlip" not in repr(train)
    assert "RandomHorizontalFlip" in repr(create_transforms(lite_config, "light", hflip=True)[0])
    assert "RandomHorizontalFlip" in repr(create_transforms(lite_config, "none", hflip=True)[0])
    with pytest.raises(ValueError, match="unknown augmentation 'strog'; did you mean strong"):
        create_transforms(lite_config, "strog")


def test_make_loader_reproducible_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    samples = Samples(["a", "b"], [0, 1] * 10, arrays=np.arange(20, dtype=np.uint8).repeat(4).reshape(20, 2, 2))
    dataset = ImageDataset(samples, lambda img: torch.as_tensor(np.asarray(img)[0, 0, 0]))

    def order(seed: int) -> list[int]:
        return torch.cat([x for x, _ in make_loader(dataset, 4, shuffle=True, seed=seed)]).tolist()

    assert order(1) == order(1) != order(2)
    assert sorted(order(1)) == list(range(20))
    plain = make_loader(dataset, 8, shuffle=False)
    assert next(iter(plain))[0].tolist() == list(range(8)) and next(iter(plain))[1].tolist() == [0, 1] * 4
    monkeypatch.setattr(loader_module, "available_cpus", lambda: 2)
    assert make_loader(dataset, 4, shuffle=True).num_workers == 0
    monkeypatch.setattr(loader_module, "available_cpus", lambda: 16)
    assert loader_module.default_num_workers(torch.device("cpu")) == 8
    monkeypatch.setattr(loader_module, "available_cpus", lambda: 2)
    assert loader_module.default_num_workers(torch.device("cuda")) == 1
    sampler = torch.utils.data.SequentialSampler(range(20))
    assert next(iter(make_loader(dataset, 4, shuffle=True, sampler=sampler)))[0].tolist() == [0, 1, 2, 3]


def test_collect_paths(tmp_path: Path) -> None:
    a = _png(tmp_path / "a.png")
    nested = _png(tmp_path / "dir" / "sub" / "b.jpg")
    (tmp_path / "dir" / "readme.txt").write_text("skip me")
    c = _png(tmp_path / "glob" / "c.png")
    found = collect_paths([str(a), str(tmp_path / "dir"), str(tmp_path / "glob" / "*.png"), str(a)])
    assert found == sorted([str(a), str(nested), str(c)])
    with pytest.raises(ValueError, match="nothing_here"):
        collect_paths([str(tmp_path / "nothing_here" / "*.png")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files in directory"):
        collect_paths([str(tmp_path / "empty")])


# ---------------------------------------------------------------- built-in datasets


def test_digits_arrays_and_write_image_folder(tmp_path: Path) -> None:
    x, y, classes = load_digits_arrays()
    assert x.shape == (1797, 8, 8) and x.dtype == np.uint8 and x.max() == 255 and x.min() == 0
    assert classes == [str(i) for i in range(10)] and set(y.tolist()) == set(range(10))
    out = write_image_folder(x[:6], [0, 1, 2, 0, 1, 2], ["T-shirt/top", "Trouser", ".hidden"], tmp_path / "f")
    assert sorted(p.name for p in out.iterdir()) == ["T-shirt_top", "Trouser", "_hidden"]
    splits = load_data(out, val_fraction=0.5)
    assert splits.classes == ["T-shirt_top", "Trouser", "_hidden"]
    assert np.array_equal(np.asarray(open_image(out / "T-shirt_top" / "00000.png"))[..., 0], x[0])


def test_photos_arrays() -> None:
    pytest.importorskip("skimage")
    x, y, classes = load_photos_arrays(per_class=2, size=16, names=("camera", "coffee"))
    assert x.shape == (4, 16, 16, 3) and x.dtype == np.uint8 and y.tolist() == [0, 0, 1, 1]
    assert classes == ["camera", "coffee"]


def test_fashion_mnist() -> None:
    if not fashion_mnist_available():
        pytest.skip("Fashion-MNIST absent: apt-get install dataset-fashion-mnist")
    x, y, classes = load_fashion_mnist("test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8 and len(classes) == 10
    assert np.bincount(y).tolist() == [1000] * 10
    sub, sub_y, _ = load_fashion_mnist("train", per_class=7, seed=1)
    assert sub.shape == (70, 28, 28) and np.bincount(sub_y).tolist() == [7] * 10
    assert np.array_equal(load_fashion_mnist("train", per_class=7, seed=1)[1], sub_y)
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_fashion_mnist("valid")


def test_fashion_mnist_train_size() -> None:
    if not fashion_mnist_available():
        pytest.skip("Fashion-MNIST absent: apt-get install dataset-fashion-mnist")
    x, y, _ = load_fashion_mnist("train")
    assert x.shape == (60000, 28, 28) and np.bincount(y).tolist() == [6000] * 10


def test_strong_augmentation_survives_every_magnitude(lite_config: dict) -> None:
    """RandAugment's magnitude noise reaches 10, where the increasing posterize keeps 0 bits and Pillow refuses:
    the strong preset clips it, so thousands of draws (and every op at the top magnitude) never raise."""
    import random

    train, _ = create_transforms(lite_config, "strong")
    image = Image.fromarray(RNG.integers(0, 256, (28, 28, 3), dtype=np.uint8))
    random.seed(0)
    torch.manual_seed(0)
    for _ in range(3000):  # at mstd 0.5 ≈ 1 image in 600 drew posterize at magnitude 10 before the clip
        assert train(image).shape == (3, 32, 32)
    rand_augment = next(t for t in train.transforms if type(t).__name__ == "RandAugment")
    for op in rand_augment.ops:  # each op at the largest magnitude the preset allows
        op.magnitude, op.magnitude_std, op.prob = 10, 0, 1.0
        op(image.copy())
