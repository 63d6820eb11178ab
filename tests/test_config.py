"""Config: JSON round trip, unknown keys rejected, CLI flags mapped onto the library's fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoulders.cli import build_parser
from shoulders.train_cli import config_from_args
from shoulders.config import RunConfig
from shoulders.run_folder import load_json, save_json


def test_round_trip_through_json(tmp_path: Path) -> None:
    cfg = RunConfig()
    cfg.train.lr, cfg.strategy.name, cfg.data.image_size = 0.01, "partial", 64
    save_json(cfg.to_dict(), tmp_path / "c.json")
    assert RunConfig.from_dict(load_json(tmp_path / "c.json")) == cfg
    assert not (tmp_path / "c.json.tmp").exists()


def test_unknown_key_is_an_error_not_silently_ignored() -> None:
    with pytest.raises(ValueError, match=r"unknown train setting\(s\) \['lrr'\]"):
        RunConfig.from_dict({"train": {"lrr": 0.1}})


def test_damaged_json_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="damaged"):
        load_json(tmp_path / "config.json")
    with pytest.raises(FileNotFoundError, match="run folder"):
        load_json(tmp_path / "missing.json")


def test_cli_flags_land_in_the_right_config_fields() -> None:
    args = build_parser().parse_args([
        "train", "data", "--out", "o", "--strategy", "partial", "--trainable-blocks", "3", "--lr", "0.02",
        "--epochs", "4", "--image-size", "96", "--crop-pct", "1.0", "--augment", "light", "--train-bn", "--hflip",
        "--no-pretrained", "--head-hidden", "128", "--patience", "2", "--no-channels-last", "--no-cache", "--quiet"])
    cfg = config_from_args(args)
    assert (cfg.strategy.name, cfg.strategy.trainable_blocks, cfg.strategy.train_bn) == ("partial", 3, True)
    assert (cfg.train.lr, cfg.train.epochs, cfg.train.patience) == (0.02, 4, 2)
    assert (cfg.data.image_size, cfg.data.crop_pct, cfg.data.augment, cfg.data.hflip) == (96, 1.0, "light", True)
    assert (cfg.model.pretrained, cfg.model.head_hidden) == (False, 128)
    assert not cfg.train.channels_last and not cfg.train.feature_cache and not cfg.train.progress
    untouched = config_from_args(build_parser().parse_args(["train", "data", "--out", "o"]))
    assert untouched.train.epochs is None and untouched.strategy.name == "auto"  # None: the plan decides
    assert json.loads(json.dumps(untouched.to_dict())) == untouched.to_dict()
