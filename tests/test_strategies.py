"""Strategies: exact requires_grad, BatchNorm mode and learning rates per strategy and depth."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from shoulders.config import StrategyConfig
from shoulders.models import backbone_blocks, create_transfer_model
from shoulders.strategies import ALL_BLOCKS, STRATEGIES, Phase, create_strategy, resolve_block_count
from shoulders.train import warmup_cosine

from conftest import TINY


def tiny(name: str = TINY) -> nn.Module:
    torch.manual_seed(0)
    return create_transfer_model(name, 3, pretrained=False)[0]


def trainable_names(model: nn.Module) -> set[str]:
    return {n for n, p in model.backbone.named_parameters() if p.requires_grad}


def bn_modes(model: nn.Module) -> dict[str, bool]:
    return {n: m.training for n, m in model.backbone.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}


def test_blocks_come_from_the_models_own_structure() -> None:
    stem, blocks = backbone_blocks(tiny().backbone)
    assert stem.name == "conv_stem, bn1"
    assert [b.name for b in blocks] == ["blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4, conv_head, bn2"]
    params = {n for n, _ in tiny().backbone.named_parameters()}
    assert {n for b in [stem, *blocks] for n in b.param_names} == params  # every parameter in exactly one group


@pytest.mark.parametrize("name, top2", [
    ("tf_efficientnet_lite0", ["blocks.5", "blocks.6, conv_head, bn2"]),
    ("resnet50", ["layer3", "layer4"]),
    ("vgg16", ["features.28", "pre_logits"]),
])
def test_trainable_blocks_2_means_the_top_two_stages_everywhere(name: str, top2: list[str]) -> None:
    with torch.device("meta"):  # structure only: no memory, no time
        model = create_transfer_model(name, 3, pretrained=False)[0]
    strategy = create_strategy(StrategyConfig(name="partial", trainable_blocks=2))
    info = strategy.apply_phase(model, strategy.phases(10, len(backbone_blocks(model.backbone)[1]))[-1])
    assert info["trainable_blocks"] == top2
    stem, blocks = backbone_blocks(model.backbone)
    expected = {n for b in blocks[-2:] for n in b.param_names}
    assert trainable_names(model) == expected


def test_frozen_trains_only_the_head_and_puts_the_backbone_in_eval_mode() -> None:
    model = tiny()
    strategy = create_strategy(StrategyConfig(name="frozen"))
    assert strategy.uses_feature_cache
    info = strategy.apply_phase(model, strategy.phases(5, 5)[0])
    assert trainable_names(model) == set()
    assert all(p.requires_grad for p in model.head.parameters())
    assert info["trainable_params"] == sum(p.numel() for p in model.head.parameters())
    strategy.set_train_mode(model)
    assert model.head.training and not model.backbone.training
    assert not any(m.training for m in model.backbone.modules())


def test_full_trains_everything_with_bn_statistics_frozen_by_default() -> None:
    model = tiny()
    strategy = create_strategy(StrategyConfig(name="full"))
    strategy.apply_phase(model, strategy.phases(4, 5)[0])
    assert trainable_names(model) == {n for n, _ in model.backbone.named_parameters()}
    strategy.set_train_mode(model)
    assert model.backbone.training
    assert set(bn_modes(model).values()) == {False}  # running statistics fixed ...
    bn = next(m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d))
    assert bn.weight.requires_grad  # ... while the affine parameters still learn


def test_train_bn_lets_only_trainable_batchnorm_layers_update_statistics() -> None:
    model = tiny()
    strategy = create_strategy(StrategyConfig(name="partial", trainable_blocks=1, train_bn=True))
    strategy.apply_phase(model, strategy.phases(4, 5)[0])
    strategy.set_train_mode(model)
    modes = bn_modes(model)
    trainable = {n for n, v in modes.items() if v}
    assert trainable and all(n.startswith(("blocks.4", "bn2")) for n in trainable)
    assert all(not v for n, v in modes.items() if not n.startswith(("blocks.4", "bn2")))


def test_bn_mode_survives_model_train_calls_each_epoch() -> None:
    model = tiny()
    strategy = create_strategy(StrategyConfig(name="partial", trainable_blocks=2))
    strategy.apply_phase(model, strategy.phases(4, 5)[0])
    for _ in range(2):
        model.train()  # what a naive loop does
        strategy.set_train_mode(model)  # what shoulders does every epoch
        assert set(bn_modes(model).values()) == {False}


def test_two_phase_full_first_trains_the_head_alone() -> None:
    strategy = create_strategy(StrategyConfig(name="full", head_epochs=2))
    assert strategy.phases(10, 5) == [Phase("head", 2, 0), Phase("finetune", 8, ALL_BLOCKS)]
    model = tiny()
    info = strategy.apply_phase(model, strategy.phases(10, 5)[0])
    assert info["trainable_blocks"] == [] and trainable_names(model) == set()


def test_param_groups_have_configured_rates_only_trainable_params_never_twice() -> None:
    model = tiny()
    strategy = create_strategy(StrategyConfig(name="partial", trainable_blocks=2))
    strategy.apply_phase(model, strategy.phases(4, 5)[0])
    groups = strategy.param_groups(model, lr=1e-3, backbone_lr_mult=0.1, layer_decay=0.5, weight_decay=0.01)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates["head"] == pytest.approx(1e-3)
    assert rates["blocks.4, conv_head, bn2"] == pytest.approx(1e-4)
    assert rates["blocks.3"] == pytest.approx(5e-5)
    assert all(g["weight_decay"] == 0.0 for g in groups if "no decay" in g["name"])


def test_group_rate_ratios_hold_across_the_schedule() -> None:
    model = tiny()
    strategy = create_strategy(StrategyConfig(name="full"))
    strategy.apply_phase(model, strategy.phases(2, 5)[0])
    groups = strategy.param_groups(model, lr=1e-2, backbone_lr_mult=0.1, layer_decay=None, weight_decay=0.0)
    optimizer = torch.optim.AdamW(groups)
    scheduler = warmup_cosine(optimizer, total_steps=20, warmup_steps=5)
    seen = []
    for _ in range(20):
        head, top = optimizer.param_groups[0]["lr"], optimizer.param_groups[2]["lr"]
        seen.append(head)
        assert top == pytest.approx(head * 0.1)
        optimizer.step()
        scheduler.step()
    assert seen[0] < seen[5]  # warm-up rises ...
    assert seen[5] == pytest.approx(1e-2)  # ... to the configured rate ...
    assert seen[-1] < seen[6]  # ... then decays


@pytest.mark.parametrize("value, expected", [(None, 2), (1, 1), (3, 3), (0.5, 4), (0.1, 1)])
def test_block_count_from_integer_or_fraction(value: float | None, expected: int) -> None:
    assert resolve_block_count(value, 7, default=2) == expected


@pytest.mark.parametrize("value", [8, 1.5, -1])
def test_block_count_errors_say_what_to_do(value: float) -> None:
    with pytest.raises(ValueError, match="trainable_blocks="):
        resolve_block_count(value, 7, default=2)


def test_unknown_strategy_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="did you mean full"):
        create_strategy(StrategyConfig(name="fulll"))
    assert STRATEGIES.names() == ["full", "partial", "frozen"]
    with pytest.raises(ValueError, match="duplicate|already"):
        STRATEGIES.register("full", object)


def test_model_without_group_matcher_falls_back_to_children() -> None:
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 8, 3))
    stem, blocks = backbone_blocks(backbone)
    assert stem is None and [b.name for b in blocks] == ["0", "1", "3"]
