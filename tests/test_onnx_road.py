"""The torch-free predict road: a run folder exported to ONNX predicts through onnxruntime, without importing torch,
with the torch road's answers; a stale export or a request that needs torch goes back to torch, and says why."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shoulders.cli import main
from shoulders.export.runtime import choose_road, eval_array

from conftest import TINY

SHAPES = [(16, 16), (28, 28), (36, 36), (50, 80), (80, 50), (300, 200), (20, 10), (73, 73)]


@pytest.mark.parametrize("interpolation, crop_pct, size", [("bicubic", 0.875, 32), ("bilinear", 1.0, 32),
                                                           ("bicubic", 0.95, 64), ("nearest", 0.9, 48)])
def test_the_numpy_transform_equals_timms_eval_transform(interpolation: str, crop_pct: float, size: int) -> None:
    from shoulders.data import create_transforms

    cfg = {"input_size": [3, size, size], "interpolation": interpolation, "mean": [0.5, 0.4, 0.3],
           "std": [0.2, 0.25, 0.3], "crop_pct": crop_pct, "crop_mode": "center"}
    _, eval_tf = create_transforms(cfg)
    spec = {"size": cfg["input_size"], "mean": cfg["mean"], "std": cfg["std"], "interpolation": interpolation,
            "crop_pct": crop_pct}
    rng = np.random.default_rng(0)
    for w, h in SHAPES:
        image = Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
        expected = eval_tf(image).numpy()
        got = eval_array(image, spec)
        assert got.dtype == np.float32 and got.shape == expected.shape == (3, size, size), (w, h)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6, err_msg=f"{w}x{h}")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A frozen run on 36 colour images, exported to ONNX, and a folder to predict with one unreadable file."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from conftest import colour_images
    from shoulders import TransferClassifier
    from shoulders.pipelines import export_run

    x, y, classes = colour_images(12)
    root = tmp_path_factory.mktemp("road")
    for i, (img, label) in enumerate(zip(x, y)):
        (root / "data" / classes[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / "data" / classes[label] / f"{i:03d}.png")
    TransferClassifier(backbone=TINY, strategy="frozen", pretrained=False, image_size=32,
                       progress=False).fit(root / "data", out_dir=root / "run")
    export_run(root / "run")
    images = root / "images"
    shutil.copytree(root / "data" / "red", images)
    Image.fromarray(np.full((50, 30, 3), 90, dtype=np.uint8)).save(images / "tall.jpg")  # another shape
    (images / "garbage.png").write_bytes(b"this is not an image")
    return root / "run", images


def test_an_exported_run_predicts_without_torch_and_agrees_with_torch(exported, capsys) -> None:
    from shoulders import TransferClassifier

    run_dir, images = exported
    script = ("import json, sys\nfrom shoulders.cli import main\n"
              f"code = main(['predict', {str(run_dir)!r}, {str(images)!r}, '--json'])\n"
              "heavy = sorted(m for m in ('torch', 'timm', 'torchvision') if m in sys.modules)\n"
              "print(json.dumps({'code': code, 'heavy': heavy}), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    status = json.loads(done.stderr.strip().splitlines()[-1])
    assert status == {"code": 0, "heavy": []}, done.stderr
    onnx_rows = json.loads(done.stdout)
    # The export computes in fp32 (its parity check is against the fp32 network), so it is compared with the torch
    # road in fp32; the CLI's torch road may run a frozen run in bf16 (CPUs with native bf16), checked looser.
    clf = TransferClassifier.load(run_dir)
    clf.config_.train.inference_precision = "fp32"
    fp32_rows = clf.predict_top_k([images], k=3)
    code = main(["predict", str(run_dir), str(images), "--json", "--runtime", "torch"])
    cli_rows = json.loads(capsys.readouterr().out)
    assert code == 0 and len(onnx_rows) == 14 and sum("error" in r for r in onnx_rows) == 1
    for torch_rows, atol in ((fp32_rows, 1e-4), (cli_rows, 2e-2)):
        assert [r["path"] for r in onnx_rows] == [r["path"] for r in torch_rows]
        for a, b in zip(onnx_rows, torch_rows):
            assert a["label"] == b["label"] and a.get("error") == b.get("error"), a["path"]
            by_label = {t["label"]: t["probability"] for t in b["top_k"]}
            np.testing.assert_allclose([t["probability"] for t in a["top_k"]],
                                       [by_label[t["label"]] for t in a["top_k"]], atol=atol)


def test_a_stale_export_or_a_torch_request_takes_the_torch_road(exported, tmp_path: Path, capsys) -> None:
    from safetensors.torch import load_file, save_file

    run_dir, images = exported
    model, why = choose_road(run_dir, "auto", tta=True)
    assert model is None and "--tta needs torch" in why
    model, why = choose_road(run_dir, "auto", device="cuda")
    assert model is None and "--device cuda" in why
    assert choose_road(run_dir, "torch") == (None, "")
    with pytest.raises(ValueError, match="ImageNet head has no export"):
        choose_road(images / "000.png", "onnx")

    stale = tmp_path / "run"
    shutil.copytree(run_dir, stale)
    weights = load_file(str(stale / "model.safetensors"))
    name = next(k for k in weights if k.endswith("weight"))
    weights[name] = weights[name] + 0.01  # retrained, as far as the export can tell
    save_file(weights, str(stale / "model.safetensors"))
    model, why = choose_road(stale, "auto")
    assert model is None and "not exported from this run's current weights" in why
    code = main(["predict", str(stale), str(images / "000.png"), "--runtime", "onnx"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("shoulders: error: --runtime onnx:") and "shoulders export" in err
    code = main(["predict", str(stale), str(images / "000.png")])  # auto: the torch road answers, and says why
    captured = capsys.readouterr()
    assert code == 0 and "000.png" in captured.out and "predicting with torch" in captured.err

    (stale / "model.onnx").unlink()
    model, why = choose_road(stale, "auto")
    assert model is None and f"`shoulders export {stale}` once" in why


def test_the_onnx_road_streams_a_folder_in_batches(exported, monkeypatch) -> None:
    """Images are decoded a batch at a time; batches of 4 (a bad file among them) give the rows of one batch."""
    from shoulders.export import runtime

    run_dir, images = exported
    model, why = runtime.choose_road(run_dir, "onnx")
    assert model is not None and why == ""
    whole = runtime.predict_top_k(model, [images], 3)
    monkeypatch.setattr(runtime, "BATCH", 4)
    batched = runtime.predict_top_k(model, [images], 3)
    assert len(whole) == len(batched) == 14
    for a, b in zip(batched, whole):
        assert (a["path"], a["label"], a.get("error")) == (b["path"], b["label"], b.get("error"))
        np.testing.assert_allclose([t["probability"] for t in a["top_k"]], [t["probability"] for t in b["top_k"]],
                                   atol=1e-5)
