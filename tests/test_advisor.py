"""Tests for the advisor: quadrant logic at its borders, plans, Advice, matrix, CLI, ranking."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from conftest import TINY, colour_images
from shoulders.advisor import (
    LARGE_PER_CLASS,
    QUADRANTS,
    SIMILARITY_THRESHOLD,
    Advice,
    SizeFigures,
    advise,
    advise_splits,
    choose_depth,
    default_plan,
    place,
    plan_for_quadrant,
    rank_backbones,
    similarity_from_statistics,
)
from shoulders.advisor.matrix import matrix_text, save_matrix_png
from shoulders.advisor.measure import distances_by_block, sample_indices
from shoulders.advisor.rules import probe_depth, statistics_depth
from shoulders.cli import main
from shoulders.data import load_data, resolve_data_config
from shoulders.models import WeightsInfo, WeightsUnavailableError

EPS = 1e-9


# ------------------------------------------------------------------------------------------------ quadrant logic
class TestPlace:
    @pytest.mark.parametrize("per_class, similarity, expected", [
        (999, SIMILARITY_THRESHOLD - EPS, 3), (999, SIMILARITY_THRESHOLD, 4),
        (1000, SIMILARITY_THRESHOLD - EPS, 1), (1000, SIMILARITY_THRESHOLD, 2),
        (999.5, SIMILARITY_THRESHOLD + EPS, 4), (5000, 1.0, 2), (1, 0.0, 3),
    ])
    def test_borders(self, per_class: float, similarity: float, expected: int) -> None:
        assert place(per_class, similarity, SIMILARITY_THRESHOLD) == expected

    def test_nan_similarity_counts_as_different(self) -> None:
        assert place(100, math.nan, 0.8) == 3
        assert place(2000, math.nan, 0.8) == 1

    def test_quadrant_table_matches_the_seed(self) -> None:
        assert {n: (q.large, q.similar, q.strategy) for n, q in QUADRANTS.items()} == {
            1: (True, False, "full"), 2: (True, True, "partial"), 3: (False, False, "partial"),
            4: (False, True, "frozen")}


class TestSizeFigures:
    def test_999_is_small_1000_is_large(self) -> None:
        small = SizeFigures.from_labels(np.repeat([0, 1], 999), 2)
        large = SizeFigures.from_labels(np.repeat([0, 1], 1000), 2)
        assert (small.large, large.large) == (False, True)
        assert large.large_per_class == LARGE_PER_CLASS == 1000

    def test_figures(self) -> None:
        labels = np.array([0] * 10 + [1] * 30 + [2] * 20)
        s = SizeFigures.from_labels(labels, 3)
        assert (s.total, s.classes, s.min_per_class, s.median_per_class, s.max_per_class) == (60, 3, 10, 20.0, 30)
        assert s.imbalance == 3.0
        assert s.to_dict()["large"] is False

    def test_median_decides_not_one_rare_class(self) -> None:
        labels = np.concatenate([np.repeat([0, 1, 2], 1500), np.full(50, 3)])
        assert SizeFigures.from_labels(labels, 4).large

    def test_empty_class_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="at least one image"):
            SizeFigures.from_labels(np.array([0, 0, 2]), 3)


# ------------------------------------------------------------------------------------------------ measured rules
class TestRules:
    def test_similarity_is_one_over_one_plus_geometric_mean(self) -> None:
        assert similarity_from_statistics([1.0, 1.0]) == pytest.approx(0.5)
        assert similarity_from_statistics([0.25, 4.0]) == pytest.approx(0.5)  # geometric mean 1
        assert similarity_from_statistics([0.0]) == pytest.approx(1.0, abs=1e-9)
        assert math.isnan(similarity_from_statistics([]))

    @pytest.mark.parametrize("acc, expected", [
        ([0.5, 0.6, 0.7, 0.8], (1, 4)),  # still improving at the top: retrain only the top block
        ([0.5, 0.8, 0.7, 0.6], (2, 2)),  # peaks at block 2 of 4: the two above are ImageNet-specific
        ([0.5, 0.79, 0.8, 0.7], (2, 2)),  # within the tolerance of the best counts as levelled off
        ([0.9, 0.9, 0.9], (2, 1)),
        ([0.7], (1, 1)),
    ])
    def test_probe_depth(self, acc: list[float], expected: tuple[int, int]) -> None:
        assert probe_depth(acc, tolerance=0.02) == expected
        choice = choose_depth(acc, tolerance=0.02)
        assert (choice.depth, choice.probe_peak, choice.statistics_depth) == (*expected, None)

    @pytest.mark.parametrize("similarities, expected", [
        ([0.9, 0.9, 0.9, 0.9], 0), ([0.9, 0.9, 0.9, 0.7], 1), ([0.7, 0.9, 0.9, 0.9], 4), ([0.9, 0.79, 0.9, 0.7], 3),
        ([0.9, 0.8, 0.8, 0.8], 0),  # the threshold itself is similar
    ])
    def test_statistics_depth(self, similarities: list[float], expected: int) -> None:
        assert statistics_depth(similarities, threshold=0.8) == expected

    def test_choose_depth_takes_the_deeper(self) -> None:
        choice = choose_depth([0.5, 0.6, 0.7, 0.8], [0.9, 0.7, 0.9, 0.9], threshold=0.8)
        assert (choice.depth, choice.probe_depth, choice.statistics_depth) == (3, 1, 3)
        assert choose_depth([0.5, 0.9, 0.7, 0.6], [0.9, 0.9, 0.9, 0.9], threshold=0.8).depth == 2

    def test_choose_depth_needs_blocks(self) -> None:
        with pytest.raises(ValueError, match="at least one block"):
            choose_depth([])

    def test_sample_is_class_balanced_and_seeded(self) -> None:
        labels = np.array([0] * 500 + [1] * 20 + [2] * 2)
        idx = sample_indices(labels, 30, seed=0)
        assert np.bincount(labels[idx]).tolist() == [10, 10, 2]
        assert np.array_equal(idx, sample_indices(labels, 30, seed=0))
        assert not np.array_equal(idx, sample_indices(labels, 30, seed=1))


# ------------------------------------------------------------------------------------------------ plans
class TestPlans:
    def test_plan_per_quadrant(self) -> None:
        plans = {q: plan_for_quadrant(q, depth=3) for q in QUADRANTS}
        assert [(p.strategy, p.augment, p.trainable_blocks) for p in plans.values()] == [
            ("full", "none", None), ("partial", "none", 3), ("partial", "light", 3), ("frozen", "light", None)]
        assert all(p.reasons and f"quadrant {q}" in p.reasons[-1] for q, p in plans.items())

    def test_partial_needs_a_depth(self) -> None:
        with pytest.raises(ValueError, match="depth"):
            plan_for_quadrant(3)
        with pytest.raises(ValueError, match="quadrant must be"):
            plan_for_quadrant(5)

    def test_reasons_are_kept_in_order(self) -> None:
        plan = plan_for_quadrant(4, reasons=["small", "similar"])
        assert plan.reasons[:2] == ["small", "similar"]


class TestDefaultPlan:
    def test_default_plan_unknown(self) -> None:
        with pytest.raises(ValueError, match="unknown strategy"):
            default_plan("half")


# ------------------------------------------------------------------------------------------------ tiny-model advice
@pytest.fixture(scope="module")
def tiny_advice() -> Advice:
    x, y, _ = colour_images(20, size=16)
    splits = load_data(x, y, seed=0)
    model = timm.create_model(TINY, num_classes=0)
    return advise_splits(splits, model, resolve_data_config(model, 32), backbone_name=TINY, device="cpu", seed=0,
                         progress=False, pretrained=False, sample_size=30)


class TestAdvice:
    def test_to_dict_is_json_with_top_level_keys(self, tiny_advice: Advice) -> None:
        d = json.loads(json.dumps(tiny_advice.to_dict(), allow_nan=False))
        assert d["quadrant"] in (1, 2, 3, 4) and isinstance(d["similarity"], float)
        assert d["quadrant"] == place(d["size"]["median_per_class"], d["similarity"], d["similarity_threshold"])
        assert d["size"]["total"] == 60 and d["size"]["median_per_class"] == 20
        assert d["measurements"]["similarity"]["threshold"] == d["similarity_threshold"]
        assert {"logme", "h_score", "gbc", "linear_probe", "imagenet_bn_distance"} <= set(d["measurements"])
        assert d["plan"]["strategy"] in ("full", "partial", "frozen") and d["reasons"] == d["plan"]["reasons"]

    def test_sample_and_depth_probe(self, tiny_advice: Advice) -> None:
        assert tiny_advice.sample_size == 30 and tiny_advice.image_size == 32
        assert [r["block"] for r in tiny_advice.depth_probe][-1].endswith("bn2")  # the top block ends the backbone
        assert all(0 <= r["probe_accuracy"] <= 1 and 0 < r["similarity"] <= 1 for r in tiny_advice.depth_probe)

    def test_distances_grouped_by_owning_block(self) -> None:
        model = timm.create_model(TINY, num_classes=0)
        grouped = distances_by_block(model, [("bn1", 9.0), ("blocks.0.0.bn1", 1.0), ("blocks.4.0.bn2", 2.0),
                                             ("bn2", 3.0)])
        assert grouped[0] == ("blocks.0", [1.0]) and grouped[-1][1] == [2.0, 3.0]  # the stem's bn1 is left out
        assert all(d == [] for _, d in grouped[1:-1])

    def test_no_imagenet_head_without_pretraining(self, tiny_advice: Advice) -> None:
        assert "leep" not in tiny_advice.measurements
        assert any("randomly initialised" in r for r in tiny_advice.reasons)

    def test_report_mentions_plan_and_matrix(self, tiny_advice: Advice) -> None:
        text = tiny_advice.report()
        assert f">> Q{tiny_advice.quadrant}" in text and "why:" in text and "plan" in text

    def test_matrix_png(self, tiny_advice: Advice, tmp_path: Path) -> None:
        path = tiny_advice.save_matrix(tmp_path / "m.png")
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == (640, 520)


class TestMatrixText:
    @pytest.mark.parametrize("per_class, similarity, quadrant", [(100, 0.5, 3), (100, 0.9, 4), (5000, 0.5, 1),
                                                                 (5000, 0.9, 2)])
    def test_marks_the_placed_quadrant_only(self, per_class: int, similarity: float, quadrant: int) -> None:
        text = matrix_text(images_per_class=per_class, similarity=similarity, similarity_threshold=0.8,
                           large_per_class=1000, quadrant=quadrant)
        marked = [line for line in text.splitlines() if ">> Q" in line]
        assert len(marked) == 1 and f">> Q{quadrant}" in marked[0]
        assert f"{per_class}/class, sim {similarity:.3f}" in text
        row = 0 if quadrant in (1, 2) else 1  # large on top
        rows = [line for line in text.splitlines() if line.startswith(("large", "small"))]
        assert f">> Q{quadrant}" in rows[row]
        left = marked[0].index(">> Q") < len(marked[0]) // 2
        assert left == (quadrant in (1, 3))  # different on the left

    def test_png_with_nan_similarity(self, tmp_path: Path) -> None:
        path = save_matrix_png(tmp_path / "m.png", images_per_class=50, similarity=math.nan, similarity_threshold=0.8,
                               large_per_class=1000, quadrant=3)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------ ranking
def _fake_backbones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny random networks stand in for pretrained backbones; "missing" has no weights."""

    def create(name: str, *, weights: str | None = None, pretrained: bool = True,
               with_imagenet_head: bool = False) -> tuple[torch.nn.Module, WeightsInfo]:
        if name == "missing":
            raise WeightsUnavailableError(name, "not bundled")
        torch.manual_seed(len(name))
        return timm.create_model(name, num_classes=1000 if with_imagenet_head else 0), WeightsInfo("random")

    # Through sys.modules: the package's ``advise`` attribute is the function, not the module.
    for module in ("shoulders.advisor.advise", "shoulders.advisor.ranking"):
        monkeypatch.setattr(sys.modules[module], "create_backbone", create)
        monkeypatch.setattr(sys.modules[module], "resolve_backbone_name", lambda name: name)


class TestRanking:
    def test_orders_by_score_and_puts_unavailable_last(self, monkeypatch: pytest.MonkeyPatch) -> None:
        _fake_backbones(monkeypatch)
        x, y, _ = colour_images(10, size=16)
        pool = load_data(x, y, seed=0).train
        ranking, built = rank_backbones(pool, ["missing", TINY, "test_resnet"], image_size=32, device="cpu",
                                        seed=0, sample_size=24)
        scores = [r.score for r in ranking if r.error is None]
        assert scores == sorted(scores, reverse=True) and len(scores) == 2
        assert ranking[-1].backbone == "missing" and "not bundled" in ranking[-1].error
        assert set(built) == {TINY, "test_resnet"}

    def test_advise_recommends_the_best(self, monkeypatch: pytest.MonkeyPatch) -> None:
        _fake_backbones(monkeypatch)
        x, y, _ = colour_images(10, size=16)
        advice = advise(x, y, backbones=[TINY, "test_resnet"], image_size=32, device="cpu", sample_size=24)
        assert advice.backbone == advice.ranking[0].backbone
        assert any("recommended" in r for r in advice.reasons)
        assert len(advice.to_dict()["ranking"]) == 2


# ------------------------------------------------------------------------------------------------ CLI and training
def test_cli_advise_json(image_folder: Path, tiny_weights: Path, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "matrix.png"
    assert main(["advise", str(image_folder), "--backbone", TINY, "--weights", str(tiny_weights), "--image-size",
                 "32", "--sample-size", "24", "--device", "cpu", "--json", "--matrix", str(png)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["quadrant"] in (1, 2, 3, 4) and isinstance(d["similarity"], float)
    assert {"imagenet_confidence", "leep", "nce"} <= set(d["measurements"])  # the file's ImageNet head was used
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_advise_report(image_folder: Path, tiny_weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["advise", str(image_folder), "--backbone", TINY, "--weights", str(tiny_weights), "--image-size",
                 "32", "--sample-size", "24", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "similarity" in out and ">> Q" in out and "why:" in out


def test_train_auto_writes_advice_and_matrix(image_folder: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", str(image_folder), "--out", str(out), "--backbone", TINY, "--no-pretrained", "--epochs",
                 "1", "--image-size", "32", "--device", "cpu", "--quiet", "--augment", "none"]) == 0
    advice = json.loads((out / "advice.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert advice["plan"]["strategy"] == config["config"]["strategy"]["name"]
    assert config["config"]["train"]["epochs"] == 1 and config["config"]["data"]["augment"] == "none"  # flags win
    with Image.open(out / "matrix.png") as im:
        assert im.format == "PNG"
    assert ">> Q" in capsys.readouterr().out


def test_explicit_strategy_writes_no_advice(image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["train", str(image_folder), "--out", str(out), "--backbone", TINY, "--no-pretrained", "--strategy",
                 "frozen", "--image-size", "32", "--device", "cpu", "--quiet"]) == 0
    assert not (out / "advice.json").exists() and not (out / "matrix.png").exists()


@pytest.mark.slow
class TestRealWeights:
    """The bundled ImageNet weights: photographs measure as similar, digits as different (a few seconds)."""

    def test_photos_similar_digits_different(self) -> None:
        pytest.importorskip("skimage.data")
        from shoulders.data import load_digits_arrays, load_photos_arrays

        photos = advise(*load_photos_arrays(per_class=12, size=96)[:2], image_size=64, sample_size=60, device="cpu")
        x, y, _ = load_digits_arrays()
        digits = advise(x[:300], y[:300], image_size=64, sample_size=60, device="cpu")
        assert photos.similarity >= SIMILARITY_THRESHOLD > digits.similarity
        assert (photos.quadrant, digits.quadrant) == (4, 3)
        assert photos.plan.strategy == "frozen" and digits.plan.strategy == "partial"
        assert {"leep", "nce", "imagenet_confidence"} <= set(digits.measurements)  # the bundled ImageNet head
