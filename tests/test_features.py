"""The feature cache: entries describe themselves and are checked; damaged ones are recomputed; size cap; CLI."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from shoulders import TransferClassifier
from shoulders.cli import main
from shoulders.train.features import (FeatureCache, cache_info, evict, feature_cache_dir, parse_size)

from conftest import TINY

IDENTITY = {"backbone": "b", "weights": "w", "data_config": {"input_size": [3, 32, 32]}}
PRINTS = [f"{i:040x}" for i in range(5)]


def _features(n: int = 5, d: int = 8) -> np.ndarray:
    return np.arange(n * d, dtype=np.float32).reshape(n, d)


def test_round_trip_and_identity_checks(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    key = cache.key(IDENTITY, PRINTS)
    assert cache.get(key) is None and cache.misses == 1
    cache.put(key, _features())
    np.testing.assert_array_equal(cache.get(key, dim=8), _features())
    assert cache.hits == 1 and cache.rejected == 0
    assert cache.get(key, dim=16) is None and cache.rejected == 1  # wrong width for this backbone
    assert not (tmp_path / f"{key}.npz").exists()  # a rejected entry is deleted, so it is rewritten


@pytest.mark.parametrize("damage", ["wrong_shape", "wrong_dtype", "foreign_identity", "truncated", "garbage",
                                    "nan", "old_format"])
def test_a_bad_entry_is_rejected_never_used(tmp_path: Path, damage: str, caplog) -> None:
    cache = FeatureCache(tmp_path)
    key = cache.key(IDENTITY, PRINTS)
    path = tmp_path / f"{key}.npz"
    if damage == "wrong_shape":
        cache.put(key, _features(n=4))  # one image short of the five the key describes
    elif damage == "wrong_dtype":
        cache.put(key, _features())
        with np.load(path) as data:
            meta = str(data["meta"])
        np.savez(path, features=_features().astype(np.float64), meta=np.array(meta))
    elif damage == "foreign_identity":
        other = FeatureCache(tmp_path)
        other.key({**IDENTITY, "backbone": "another"}, PRINTS)
        other._expected[key] = other._expected.popitem()[1]  # another model's entry under this key's name
        other.put(key, _features())
    elif damage == "truncated":
        cache.put(key, _features())
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        tmp_path.joinpath(f"{key}.npz").write_bytes(b"not a zip file")
    elif damage == "nan":
        bad = _features()
        bad[2, 3] = np.nan
        cache.put(key, bad)
    elif damage == "old_format":
        np.savez(path, features=_features())  # the layout before entries described themselves
    with caplog.at_level(logging.WARNING):
        assert cache.get(key) is None
    assert cache.rejected == 1 and "recomputing" in caplog.text
    cache.put(key, _features())
    np.testing.assert_array_equal(cache.get(key), _features())  # overwritten with a good entry


def test_size_cap_evicts_least_recently_used(tmp_path: Path, monkeypatch) -> None:
    cache = FeatureCache(tmp_path, max_bytes=10**9)
    keys = [cache.key(IDENTITY, [p]) for p in PRINTS[:3]]
    for i, key in enumerate(keys):
        cache.put(key, _features(n=1, d=1000))
        os.utime(tmp_path / f"{key}.npz", (1000 + i, 1000 + i))
    cache.get(keys[0])  # used now: the most recent
    one = (tmp_path / f"{keys[0]}.npz").stat().st_size
    assert evict(tmp_path, 2 * one) == 1
    assert {p.stem for p in tmp_path.glob("*.npz")} == {keys[0], keys[2]}  # keys[1] was least recently used
    monkeypatch.setenv("SHOULDERS_CACHE_MAX_SIZE", str(one))
    capped = FeatureCache(tmp_path)
    capped.key(IDENTITY, PRINTS[3:4])
    capped.put(capped.key(IDENTITY, PRINTS[3:4]), _features(n=1, d=1000))
    assert len(list(tmp_path.glob("*.npz"))) == 1 and capped.evicted == 2


def test_parse_size() -> None:
    assert parse_size("4G") == 4 << 30 and parse_size("500m") == 500 << 20 and parse_size("2.5GB") == int(2.5 * (1 << 30))
    assert parse_size("1024") == 1024 and parse_size("0") == 0
    with pytest.raises(ValueError, match="e.g. 4G"):
        parse_size("lots")


def test_a_wrong_shape_entry_is_recomputed_in_a_frozen_fit(tmp_path: Path, image_folder: Path, caplog) -> None:
    first = _frozen_fit(image_folder)
    entries = sorted(feature_cache_dir().glob("*.npz"))
    assert entries, "the first frozen fit stored features"
    for path in entries:  # every entry replaced by a matrix one image short, its description kept
        with np.load(path) as data:
            feats, meta = data["features"], str(data["meta"])
        np.savez(path, features=feats[:-1], meta=np.array(json.dumps({**json.loads(meta),
                                                                       "shape": [len(feats) - 1, feats.shape[1]]})))
    with caplog.at_level(logging.WARNING):
        second = _frozen_fit(image_folder)
    assert second.feature_cache_["hits"] == 0 and second.feature_cache_["misses"] == len(entries)
    assert caplog.text.count("is not used") == len(entries)
    np.testing.assert_allclose(second.predict_proba(image_folder), first.predict_proba(image_folder), atol=1e-6)
    for path in entries:  # overwritten with the right shape
        with np.load(path) as data:
            assert len(data["features"]) == json.loads(str(data["meta"]))["images"]
    third = _frozen_fit(image_folder)
    assert third.feature_cache_["hits"] == len(entries)


def _frozen_fit(image_folder: Path) -> TransferClassifier:
    """A frozen fit with the feature cache on: TINY with its random init saved as a 'weights file'."""
    return TransferClassifier(backbone=TINY, strategy="frozen", image_size=32, progress=False,
                              weights=str(_tiny_weights(image_folder.parent))).fit(image_folder)


def _tiny_weights(folder: Path) -> Path:
    import timm
    import torch
    from safetensors.torch import save_file

    path = folder / "tiny.safetensors"
    if not path.exists():
        torch.manual_seed(0)
        save_file(timm.create_model(TINY, num_classes=0).state_dict(), str(path))
    return path


def test_cache_cli_info_and_clear(capsys, tmp_path: Path) -> None:
    cache = FeatureCache(feature_cache_dir())
    cache.put(cache.key(IDENTITY, PRINTS), _features())
    assert main(["cache", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["entries"] == 1 and info["bytes"] > 0 and info["max_bytes"] == 4 << 30
    assert main(["cache", "info"]) == 0
    assert "SHOULDERS_CACHE_MAX_SIZE=4G" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 1 feature cache entry" in capsys.readouterr().out
    assert cache_info()["entries"] == 0
