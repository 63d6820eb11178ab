"""Heatmaps (Grad-CAM on the backbone's last feature stage) and test-time augmentation."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY, colour_images
from shoulders import TransferClassifier
from shoulders.cli import main
from shoulders.explain import (
    VIEWS,
    TTAModel,
    crop_box,
    default_views,
    explain_images,
    heatmaps,
    merge_views,
    overlay,
    resolve_targets,
    resolve_views,
    target_layer,
    to_image,
    tta_decision,
)
from shoulders.models import create_backbone, create_transfer_model, list_backbones

needs_cam = pytest.mark.skipif(importlib.util.find_spec("pytorch_grad_cam") is None,
                               reason='heatmaps need grad-cam: pip install "shoulders[explain]"')


def _fit(strategy: str = "full", **kw) -> TransferClassifier:
    x, y, classes = colour_images(8, size=24)
    clf = TransferClassifier(backbone=TINY, strategy=strategy, pretrained=False, image_size=64, epochs=1,
                             progress=False, **kw)
    return clf.fit(x, np.asarray(classes)[y])


@pytest.fixture(scope="module")
def fitted() -> TransferClassifier:
    return _fit()


# -- the target layer -------------------------------------------------------------------------------------------
@needs_cam
@pytest.mark.parametrize("backbone", [b.name for b in list_backbones()])
def test_every_zoo_backbone_gets_a_heatmap_of_its_input_size(backbone: str) -> None:
    """Random init, 64 px (Inception v3: 139, so that its last stage is 3x3): the last feature stage is found
    and the map has the input's size, with values in [0, 1] and some contrast."""
    torch.manual_seed(0)
    model, _ = create_transfer_model(backbone, 3, pretrained=False)
    side = 139 if backbone == "inception_v3" else 64
    name, layer = target_layer(model)
    assert name.startswith("backbone.") and model.get_submodule(name) is layer
    maps = heatmaps(model.eval(), torch.randn(2, 3, side, side), targets=[0, 2])  # two, so one has evidence
    assert maps.shape == (2, side, side) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0 and maps.max() > 0.5


def test_target_layer_is_the_last_feature_stage_from_timm() -> None:
    model, _ = create_backbone("resnet50", pretrained=False, with_imagenet_head=True)
    assert target_layer(model)[0] == "layer4"
    tiny, _ = create_transfer_model(TINY, 2, pretrained=False)
    assert target_layer(tiny)[0] == "backbone." + tiny.backbone.feature_info[-1]["module"]
    with pytest.raises(ValueError, match="feature_info"):
        target_layer(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten()))


@needs_cam
def test_transformer_tokens_are_folded_to_a_grid() -> None:
    model, _ = create_transfer_model("test_vit", 2, pretrained=False)
    side = model.backbone.pretrained_cfg["input_size"][-1]
    maps = heatmaps(model.eval(), torch.randn(1, 3, side, side))
    assert maps.shape == (1, side, side) and 0.0 <= maps.min() and maps.max() <= 1.0


# -- geometry: back onto the original image ---------------------------------------------------------------------
def test_crop_box_inverts_the_centre_crop() -> None:
    cfg = {"input_size": [3, 224, 224], "crop_pct": 0.875, "crop_mode": "center"}
    left, top, right, bottom = crop_box(512, 256, cfg)  # resized to 512x256 (shorter side 256), crop 224
    assert (left, top, right, bottom) == pytest.approx((144, 16, 368, 240))
    full = {"input_size": [3, 32, 32], "crop_pct": 1.0, "crop_mode": "center"}
    assert crop_box(16, 16, full) == pytest.approx((0, 0, 16, 16))
    heat = to_image(np.ones((224, 224), np.float32), 512, 256, cfg)
    assert heat.shape == (256, 512)
    assert heat[16:240, 144:368].min() == 1.0  # the crop, back in the image's pixels
    assert heat[:, :143].max() == 0.0 and heat[:15].max() == 0.0  # outside the crop: never seen


# -- the classifier's explain ------------------------------------------------------------------------------------
@needs_cam
def test_explain_returns_maps_of_each_images_size(fitted: TransferClassifier, tmp_path: Path) -> None:
    x, _, _ = colour_images(2, size=24)
    maps = fitted.explain(x[:3])
    assert isinstance(maps, np.ndarray) and maps.shape == (3, 24, 24)
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    Image.fromarray(x[0]).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8) + 90).save(tmp_path / "b.png")
    mixed = fitted.explain([tmp_path / "a.png", tmp_path / "b.png"], target="green")
    assert [m.shape for m in mixed] == [(24, 24), (20, 30)]


@needs_cam
def test_explain_target_picks_the_class(fitted: TransferClassifier) -> None:
    x, _, _ = colour_images(1, size=24)
    top = fitted.explain(x[:1])
    by_index = fitted.explain(x[:1], target=int(fitted.predict_proba(x[:1], tta=False).argmax()))
    np.testing.assert_allclose(top, by_index, atol=1e-6)
    assert resolve_targets(["red", 2], ["red", "green", "blue"], 2) == [0, 2]
    with pytest.raises(ValueError, match="not a class"):
        fitted.explain(x[:1], target="purple")
    with pytest.raises(ValueError, match="one per image"):
        fitted.explain(x[:2], target=[0, 1, 2])


@needs_cam
@pytest.mark.parametrize("strategy", ["partial", "frozen"])
def test_explain_works_for_every_strategy(strategy: str, tmp_path: Path) -> None:
    """Frozen: no backbone parameter requires a gradient, the input carries it."""
    clf = _fit(strategy)
    clf.save(tmp_path / "run")
    x, _, _ = colour_images(1, size=24)
    for model in (clf, TransferClassifier.load(tmp_path / "run")):
        maps = model.explain(x[:2])
        assert maps.shape == (2, 24, 24) and maps.max() <= 1.0 and maps.max() > 0.0
    assert all(p.grad is None for p in clf.model_.parameters())  # no gradients left behind


@needs_cam
def test_overlay_enlarges_tiny_images() -> None:
    image = Image.fromarray(np.full((8, 8, 3), 128, np.uint8))
    heat = np.zeros((8, 8), np.float32)
    heat[2:4, 2:4] = 1.0
    out = overlay(image, heat)
    assert out.size == (160, 160) and out.mode == "RGB"
    with pytest.raises(ValueError, match="does not match"):
        overlay(image, np.zeros((4, 4), np.float32))


@needs_cam
def test_predict_explain_writes_overlays(fitted: TransferClassifier, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    fitted.save(tmp_path / "run")
    x, _, _ = colour_images(1, size=24)
    for i in range(2):
        (tmp_path / f"d{i}").mkdir()
        Image.fromarray(x[i]).save(tmp_path / f"d{i}" / "same.png")
    code = main(["predict", str(tmp_path / "run"), str(tmp_path / "d0" / "same.png"), str(tmp_path / "d1" / "same.png"),
                 "--explain", str(tmp_path / "cams"), "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and [Path(r["heatmap"]).name for r in rows] == ["same.png", "same_1.png"]
    assert Image.open(rows[0]["heatmap"]).size == (168, 168)  # 24 px enlarged 7x, the least factor to reach 160


@needs_cam
def test_explain_images_checks_the_targets(fitted: TransferClassifier) -> None:
    with pytest.raises(ValueError, match="targets for"):
        explain_images(fitted.model_, [Image.new("RGB", (8, 8))], lambda im: torch.zeros(3, 32, 32),
                       fitted.data_config_, targets=[0, 1])


# -- test-time augmentation -------------------------------------------------------------------------------------
def test_identity_view_equals_plain_prediction_exactly(fitted: TransferClassifier) -> None:
    x, _, _ = colour_images(4, size=24)
    plain = fitted.predict_proba(x, tta=False)
    assert np.array_equal(fitted.predict_proba(x, tta=["identity"]), plain)
    assert not np.array_equal(fitted.predict_proba(x, tta=True), plain)


def test_views_follow_the_runs_flip_setting() -> None:
    assert not any(v.flips for v in default_views(hflip=False))
    assert {"hflip", "hflip-zoom"} <= {v.name for v in default_views(hflip=True)}
    assert resolve_views(False, hflip=True) is None
    assert [v.name for v in resolve_views("zoom", hflip=False)] == ["zoom"]
    with pytest.raises(ValueError, match="unknown TTA view"):
        resolve_views(["identity", "rotate"], hflip=False)
    with pytest.raises(ValueError, match="empty"):
        resolve_views([], hflip=False)


def test_views_keep_the_shape_and_move_the_content() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    for name in VIEWS:
        assert VIEWS.get(name).apply(x).shape == x.shape
    assert torch.equal(VIEWS.get("hflip").apply(x)[..., 0], x[..., -1])
    assert not torch.equal(VIEWS.get("zoom").apply(x), x)


def test_tta_model_and_merge_average_probabilities() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    x = torch.randn(5, 3, 4, 4)
    views = [VIEWS.get("identity"), VIEWS.get("hflip")]
    out = TTAModel(model, views)(x).detach().numpy()
    assert out.shape == (5, 2, 2)
    expected = (torch.softmax(model(x), 1) + torch.softmax(model(torch.flip(x, dims=(-1,))), 1)) / 2
    np.testing.assert_allclose(merge_views(out), expected.detach().numpy(), atol=1e-6)


def test_tta_rule_is_a_recorded_decision(fitted: TransferClassifier) -> None:
    decision = fitted.tta_decision()
    assert decision == tta_decision(fitted.config_.data.hflip)
    assert decision.reason and decision.cost >= 1.0
    assert set(decision.to_dict()) == {"enabled", "views", "reason", "cost"}
    x, _, _ = colour_images(2, size=24)
    assert np.array_equal(fitted.predict_proba(x), fitted.predict_proba(x, tta=decision.enabled))


def test_evaluate_with_tta_records_views_and_heatmaps(fitted: TransferClassifier, tmp_path: Path) -> None:
    from shoulders.pipelines import evaluate_run

    run = tmp_path / "run"
    fitted.save(run)
    x, y, classes = colour_images(3, size=24, seed=5)
    data = tmp_path / "test"
    for i, (img, label) in enumerate(zip(x, y)):
        (data / classes[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(data / classes[label] / f"{i}.png")
    ev = evaluate_run(run, data, tta=True)
    assert ev["tta"]["enabled"] and ev["tta"]["views"] == [v.name for v in default_views(False)]
    assert ev["heatmaps"].startswith("Grad-CAM") or not ev["top_losses"]
    plain = evaluate_run(run, data, tta=False)
    assert plain["tta"] == {"enabled": False, "views": [], "default": fitted.tta_decision().to_dict()}


# -- real weights --------------------------------------------------------------------------------------------------
@pytest.mark.slow
@needs_cam
class TestRealWeights:
    """ImageNet-head mode with the bundled tf_efficientnet_lite0 weights on scikit-image's chelsea photo."""

    # The cat's face, determined once by hand on the 451x300 photo: ears and forehead at the top edge, both eyes,
    # nose and mouth; it leaves out the blurred background at the right (x > 360) and the cheeks at the left.
    CAT_FACE = (100, 40, 360, 300)  # left, top, right, bottom

    @pytest.fixture(scope="class")
    def imagenet(self) -> TransferClassifier:
        return TransferClassifier.pretrained()

    def test_heatmap_of_the_top_cat_class_lies_on_the_cat(self, imagenet: TransferClassifier) -> None:
        data = pytest.importorskip("skimage.data")
        cat = data.chelsea()
        top = imagenet.predict_top_k(cat[None], k=1, tta=False)[0]["label"]
        assert "cat" in top
        heat = imagenet.explain(cat[None], target=top)[0]
        assert heat.shape == cat.shape[:2] and 0.0 <= heat.min() and heat.max() <= 1.0
        left, top_, right, bottom = self.CAT_FACE
        inside = heat[top_:bottom, left:right].sum() / heat.sum()
        assert inside > 0.75  # measured 0.93 with the default centre crop

    def test_cat_and_cup_side_by_side_are_told_apart(self, imagenet: TransferClassifier) -> None:
        """chelsea | coffee as one image, seen whole: the cat's map sits left, the espresso's right."""
        data = pytest.importorskip("skimage.data")
        cat = data.chelsea()
        cup = np.asarray(Image.fromarray(data.coffee()).resize(cat.shape[1::-1]))
        pair = np.concatenate([cat, cup], axis=1)[None]
        imagenet.data_config_ = dict(imagenet.data_config_, crop_pct=1.0, crop_mode="squash")
        half = cat.shape[1]
        left_share = {t: float(m[:, :half].sum() / m.sum())
                      for t, m in zip(("tiger cat", "espresso"), (imagenet.explain(pair, target=t)[0]
                                                                  for t in ("tiger cat", "espresso")))}
        assert left_share["tiger cat"] > 0.65  # measured 0.78
        assert left_share["espresso"] < left_share["tiger cat"] - 0.3  # measured 0.28
