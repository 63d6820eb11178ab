"""Probing only the input sizes the search still wants (``plan_run.probe_as_needed``), and the Throughput values it
works on: the optimistic copy for unprobed sizes, merging later probes, cached sizes taken for free."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoulders.data import Samples
from shoulders.planner import DataFacts, NativeSize, Rates, Throughput, measure_throughput, plan_recipe
from shoulders.planner.plan_run import probe_as_needed
from shoulders.planner.search import useful_sizes

from conftest import TINY

SIZES = (64, 96, 112, 160, 224)


def _rates(size: int, exponent: float, training: bool = True) -> Rates:
    """A CPU whose costs grow as size^exponent from 64 px (the benchmark machine: 1.2-1.8); ``training=False``:
    only the features and evaluation timed."""
    f = (64 / size) ** exponent
    train = {"full": 300 * f, "partial-2": 560 * f, "partial-4": 400 * f} if training else {}
    return Rates(size, train, 1800 * f, 1300 * f, 0.3)


def _facts(per_class: int, native: float, quadrant: int = 3) -> DataFacts:
    n = per_class * 10
    return DataFacts(train_images=int(0.8 * n), val_images=int(0.2 * n), test_images=2000, classes=10,
                     per_class=per_class, native=NativeSize(native, native, native, int(native), int(native), n),
                     quadrant=quadrant)


def _lazy(facts: DataFacts, budget: float | None, exponent: float, probe_seconds: float = 0.0):
    probed: list[list[int]] = []

    def measure(train: list[int], features: list[int], first: bool) -> Throughput:
        probed.append(train + features)
        rates = {**{s: _rates(s, exponent) for s in train}, **{s: _rates(s, exponent, False) for s in features}}
        return Throughput(rates, seconds=probe_seconds * (len(train) + 0.2 * len(features)), source="measured")

    def plan(tp: Throughput, considered: list[int]):
        return plan_recipe(facts, tp, budget=budget, anchor_error=0.2, spent=5.0 + tp.seconds, augment="light",
                           sizes=considered)

    sizes = useful_sizes(facts, SIZES)[0]
    tp, recipe = probe_as_needed(sizes, measure, plan, exponent=1.0)
    return tp, recipe, probed, sizes


@pytest.mark.parametrize("exponent", [1.2, 1.5, 2.0])
@pytest.mark.parametrize("per_class, native, quadrant", [(100, 28, 3), (40, 64, 4), (2000, 28, 1), (200, 160, 2)])
def test_probing_what_the_search_wants_plans_what_probing_every_size_plans(exponent, per_class, native, quadrant):
    """With costs growing at least as fast as the bound, skipping sizes never changes the recipe (probe time aside)."""
    facts = _facts(per_class, native, quadrant)
    for budget in (60, 120, 600, 3600, None):
        tp, lazy, probed, sizes = _lazy(facts, budget, exponent)
        every = plan_recipe(facts, Throughput({s: _rates(s, exponent) for s in sizes}), budget=budget,
                            anchor_error=0.2, spent=5.0, augment="light", sizes=sizes)
        assert (lazy.strategy, lazy.image_size, lazy.epochs, lazy.trainable_blocks, lazy.head_init) == \
            (every.strategy, every.image_size, every.epochs, every.trainable_blocks, every.head_init), budget
        assert probed[0] == [min(sizes)] and set(tp.rates) <= set(sizes)
        skipped = sorted(set(sizes) - set(tp.rates))
        assert bool(skipped) == any("not probed" in r for r in lazy.reasons)


def test_a_short_budget_probes_fewer_sizes_and_gains_their_time():
    facts = _facts(100, 28)
    sizes = useful_sizes(facts, SIZES)[0]
    assert len(sizes) >= 3
    short, long_ = _lazy(facts, 40, 1.5, probe_seconds=5.0), _lazy(facts, 3600, 1.5, probe_seconds=5.0)
    assert set(short[0].rates) == {64} and short[0].seconds == 5.0  # only the smallest size was worth its probe
    assert long_[1].image_size in long_[0].rates and len(long_[0].rates) >= 2
    assert "160 px" in next(r for r in short[1].reasons if "not probed" in r)
    # the plan spends on training what probing every size would have cost: more epochs in the same 40 s
    every = plan_recipe(facts, Throughput({s: _rates(s, 1.5) for s in sizes}), budget=40, anchor_error=0.2,
                        spent=5.0 + 5.0 * len(sizes), augment="light", sizes=sizes)
    assert short[1].epochs > every.epochs and short[1].predicted_seconds <= 40


def test_without_a_bound_every_size_is_probed_at_once():
    calls = []

    def measure(train: list[int], features: list[int], first: bool) -> Throughput:
        calls.append((train, features, first))
        return Throughput({s: _rates(s, 2.0) for s in train}, source="measured")

    facts = _facts(100, 28)
    sizes = useful_sizes(facts, SIZES)[0]
    probe_as_needed(sizes, measure, lambda tp, s: plan_recipe(facts, tp, budget=120, anchor_error=0.2, sizes=s),
                    exponent=None)
    assert calls == [(sorted(sizes), [], True)]


def test_optimistic_rates_are_the_smaller_size_s_scaled_and_merged_probes_add_up():
    tp = Throughput({64: _rates(64, 2.0)}, seconds=2.0, source="measured", loading={64: {"train": 1e-3}})
    bound = tp.optimistic([64, 128, 256], exponent=1.0)
    assert bound.rates[64] == tp.rates[64] and bound.rates[128].train["full"] == pytest.approx(150.0)
    assert bound.rates[256].features == pytest.approx(450.0) and 128 not in tp.rates  # the original is unchanged
    later = Throughput({128: _rates(128, 2.0)}, seconds=3.0, source="measured (contended, not cached: 128 px: 40 %)",
                       contended=["128 px: 40 %"])
    both = tp.merged(later)
    assert sorted(both.rates) == [64, 128] and both.seconds == 5.0 and both.loading == tp.loading
    assert both.contended == ["128 px: 40 %"] and both.source.startswith("measured (contended")
    cached = Throughput({96: _rates(96, 2.0)}, source="cache")
    assert Throughput({64: _rates(64, 2.0)}, source="cache").merged(cached).source == "cache"


def test_the_first_probe_takes_cached_sizes_free_and_times_loading_at_all(colour_arrays, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch):
    from shoulders.models import create_transfer_model
    from shoulders.planner import throughput

    monkeypatch.setattr(throughput, "CONTENDED_SHARE", 0.0)  # a loaded test machine must not block the cache
    x, y, classes = colour_arrays
    model, _ = create_transfer_model(TINY, 3, pretrained=False)
    kwargs = dict(depths=[1], batch_size=4, device="cpu", precision="fp32", channels_last=True, backbone=TINY,
                  cache_dir=tmp_path)
    measure_throughput(model, sizes=[40], **kwargs)  # an earlier plan measured 40 px
    tp = measure_throughput(model, sizes=[32], cached_only=[40, 48], samples=Samples(classes, y, arrays=x), **kwargs)
    assert sorted(tp.rates) == [32, 40]  # 48 px was never measured: not probed now either
    assert sorted(tp.loading) == [32, 40, 48]


def test_a_size_wanted_only_for_the_frozen_head_is_timed_without_training_steps():
    """Small ImageNet-like data at 2 minutes: the frozen head at 224 px wins, so only its features are timed there;
    where fine-tuning at 224 px is the plan (large ImageNet-like data, 20 minutes), its training steps are timed."""
    facts = _facts(40, 64, quadrant=4)
    tp, recipe, probed, _ = _lazy(facts, 120, 1.5, probe_seconds=1.0)
    assert (recipe.strategy, recipe.image_size) == ("frozen", 224)
    assert tp.trained_at(64) and 224 in tp.rates and not tp.trained_at(224)
    assert any("only the frozen features timed" in r for r in recipe.reasons)
    roomy, fine_tuned, _, _ = _lazy(_facts(200, 160, quadrant=2), 1200, 1.5, probe_seconds=1.0)
    assert (fine_tuned.strategy, fine_tuned.image_size) == ("full", 224) and roomy.trained_at(224)


def test_features_only_rates_plan_training_from_a_trained_size_and_yield_to_a_later_training_probe():
    light = Throughput({64: _rates(64, 2.0), 224: _rates(224, 2.0, training=False)}, source="measured")
    assert light.per_image(224, "features") == pytest.approx(1 / light.rates[224].features)
    # training at 224 px where only features were timed: the nearest trained size, scaled by pixel count
    assert light.per_image(224, "full") == pytest.approx(1 / (300 * (64 / 224) ** 2))
    bound = light.optimistic([64, 224], exponent=1.0)
    assert bound.rates[224].train["full"] == pytest.approx(300 * 64 / 224)
    assert bound.rates[224].features == light.rates[224].features  # measured figures stay
    trained = light.merged(Throughput({224: _rates(224, 2.0)}, source="measured"))
    assert trained.trained_at(224)
    assert trained.merged(Throughput({224: _rates(224, 2.0, training=False)})).trained_at(224)  # never undone


def test_the_cache_keeps_features_only_entries_apart_from_training_ones(tmp_path: Path):
    from shoulders.planner import ThroughputCache

    identity = {"cpu": "x", "backbone": "b", "depths": [2, 4]}
    cache = ThroughputCache(tmp_path)
    cache.put(identity, _rates(224, 2.0, training=False))
    assert cache.get(identity, 224, [2, 4]) is None  # a plan that fine-tunes there must time it
    assert cache.get(identity, 224, [2, 4], training=False).features == pytest.approx(1800 * (64 / 224) ** 2)
    cache.put(identity, _rates(224, 2.0))
    cache.put(identity, _rates(224, 3.0, training=False))  # a later features-only probe: the full entry stays
    assert cache.get(identity, 224, [2, 4]).train["full"] == pytest.approx(300 * (64 / 224) ** 2)


def test_the_real_probe_times_only_features_where_asked(colour_arrays, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from shoulders.models import create_transfer_model
    from shoulders.planner import throughput

    monkeypatch.setattr(throughput, "CONTENDED_SHARE", 0.0)  # a loaded test machine must not block the cache
    model, _ = create_transfer_model(TINY, 3, pretrained=False)
    tp = measure_throughput(model, sizes=[32], features_only=[48], depths=[1], batch_size=4, device="cpu",
                            precision="fp32", channels_last=True, backbone=TINY, cache_dir=tmp_path)
    assert tp.trained_at(32) and not tp.trained_at(48) and tp.rates[48].features > 0 and tp.rates[48].evaluate > 0
    assert tp.rates[48].warmup_seconds >= 0
