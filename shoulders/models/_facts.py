"""What timm knows about the curated backbones, snapshotted so that ``shoulders zoo`` need not import timm.

Importing timm (and with it torch and torchvision) takes 3-5 s on a small CPU, longer than everything else
``shoulders zoo`` does. The facts the zoo shows — input size, parameter count, feature size, where timm would
download the weights from, and the names of all of timm's models (so that a typo in a backbone name is caught,
with the closest names, without importing timm) — are fixed for a given timm release, so they are
kept in ``_facts.json`` together with the timm version they were read from. They are used only while that same
timm version is installed; any other version, and any name not in the file, is asked of timm itself.
``tests/test_models.py`` checks the file against the installed timm; :func:`write_snapshot` rewrites it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("_facts.json")


@dataclass(frozen=True)
class TimmFacts:
    """One timm model's static facts (no weights involved).

    Attributes:
        input_size: side of the square input of its default pretrained config.
        params_m: millions of parameters without the classifier.
        num_features: size of what it returns once its classifier is removed.
        hf_hub_id: the Hugging Face repo (``repo@revision``) of its default pretrained weights, or "".
        hf_hub_filename: the file in that repo when timm names one, else "".
        url: the older direct download URL, or "".
    """

    input_size: int
    params_m: float
    num_features: int
    hf_hub_id: str
    hf_hub_filename: str
    url: str


def timm_version() -> str:
    """The installed timm's version, read from its metadata (without importing timm)."""
    try:
        return metadata.version("timm")
    except metadata.PackageNotFoundError:
        return ""


@functools.lru_cache(maxsize=1)
def _snapshot() -> dict:
    try:
        data = json.loads(SNAPSHOT.read_text())
    except (OSError, ValueError):
        return {"models": {}, "is_model": {}}
    if data.get("timm") != timm_version():  # another timm: its facts may differ, so ask it
        return {"models": {}, "is_model": {}}
    return data


@functools.lru_cache(maxsize=1)
def timm_names() -> frozenset[str] | None:
    """Every model name the installed timm accepts (``list_models()`` and its deprecated names), from the
    snapshot; ``None`` when the snapshot was read from another timm version."""
    names = _snapshot().get("names")
    return frozenset(names) if names else None


def timm_pretrained_tags(arch: str) -> list[str] | None:
    """timm's ``list_pretrained(f"{arch}.*")`` from the snapshot; ``None`` when it is for another timm."""
    tags = _snapshot().get("pretrained")
    return None if not tags else [t for t in tags if t.split(".", 1)[0] == arch]


def is_timm_model(name: str) -> bool:
    """``timm.is_model(name)``, from the snapshot when it knows the name (or knows every name)."""
    known = _snapshot()["is_model"].get(name)
    if known is not None:
        return bool(known)
    names = timm_names()
    if names is not None and "." not in name:  # a pretrained tag (``arch.tag``) is timm's to check
        return name in names
    import timm

    return bool(timm.is_model(name))


def timm_facts(name: str) -> TimmFacts:
    """The facts of timm model ``name``, from the snapshot when it has them, else from timm (~50 ms a model)."""
    row = _snapshot()["models"].get(name)
    return TimmFacts(**row) if row is not None else _facts_from_timm(name)


def pretrained_location(name: str) -> tuple[str, str, str]:
    """(hf_hub_id, hf_hub_filename, url) of ``name``'s default pretrained weights, "" where timm has none."""
    row = _snapshot()["models"].get(name)
    if row is not None:
        return row["hf_hub_id"], row["hf_hub_filename"], row["url"]
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return "", "", ""
    return cfg.hf_hub_id or "", cfg.hf_hub_filename or "", cfg.url or ""


@functools.lru_cache(maxsize=None)
def _facts_from_timm(name: str) -> TimmFacts:
    import timm
    import torch

    from shoulders.models._zoo import feature_dim

    with torch.device("meta"):  # no memory, no initialisation: only the shapes
        model = timm.create_model(name, pretrained=False, num_classes=0)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    hub_id, filename, url = pretrained_location(name)
    return TimmFacts(input_size=int(model.pretrained_cfg.get("input_size", (3, 224, 224))[-1]),
                     params_m=round(params, 2), num_features=feature_dim(model), hf_hub_id=hub_id,
                     hf_hub_filename=filename, url=url)


def snapshot_from_timm(models: list[str], names: list[str]) -> dict:
    """What :func:`write_snapshot` stores: the facts of ``models``, ``timm.is_model`` of every name in ``names``,
    and all of timm's model names."""
    import timm

    return {"timm": timm_version(), "models": {m: asdict(_facts_from_timm(m)) for m in models},
            "is_model": {n: bool(timm.is_model(n)) for n in names},
            "names": sorted({*timm.list_models(), *timm.models.get_deprecated_models()}),
            "pretrained": sorted(timm.list_pretrained())}


def write_snapshot() -> Path:
    """Rewrites ``_facts.json`` for the curated backbones and their aliases from the installed timm."""
    from shoulders.models._zoo import BACKBONES

    models = BACKBONES.names()
    names = sorted({*models, *(a for m in models for a in BACKBONES.aliases_of(m))})
    data = snapshot_from_timm(models, names)
    lists = ("names", "pretrained")
    text = json.dumps({k: v for k, v in data.items() if k not in lists}, indent=1, sort_keys=True)
    # ~1 600 and ~1 800 names, one per line, would make the file ten times longer to read: one line each
    text = text[:-2] + "".join(f',\n "{k}": {json.dumps(data[k])}' for k in lists) + "\n}"
    SNAPSHOT.write_text(text + "\n")
    _snapshot.cache_clear()
    timm_names.cache_clear()
    return SNAPSHOT


if __name__ == "__main__":
    print(f"wrote {write_snapshot()}")
