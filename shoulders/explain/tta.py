"""Test-time augmentation: the average of the class probabilities over a few views of each image.

Views act on the preprocessed batch (after the evaluation transform), on the model's device, so an image is
decoded once whatever the number of views. Which views suit the data is the run's business: a horizontal flip
only where the run allowed flips in training (``hflip``; never digits or text, whose mirror image is another
symbol), small scale and crop changes everywhere. The identity view runs exactly the plain prediction, so TTA with
the identity view alone equals plain prediction bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shoulders._registry import Registry
from shoulders.explain.tta_rule import default_view_names

ZOOM = 0.875  # the centre view keeps 87.5 % of the side: the same margin timm's crop_pct takes at evaluation
SHIFT = 0.9  # the corner views keep 90 % of the side, so each shifts the content by 5 % of the image


@dataclass(frozen=True)
class View:
    """One test-time view: a name and a function of a (N, C, H, W) batch that keeps its shape."""

    name: str
    apply: Callable[[torch.Tensor], torch.Tensor]
    flips: bool = False  # mirrors the image: allowed only where the run allows flips


def _crop_resized(x: torch.Tensor, fraction: float, anchor: str) -> torch.Tensor:
    """The ``fraction`` × side crop at ``anchor`` (centre, top-left, bottom-right), resized back to the side."""
    h, w = x.shape[-2:]
    ch, cw = max(int(round(h * fraction)), 1), max(int(round(w * fraction)), 1)
    top, left = {"centre": ((h - ch) // 2, (w - cw) // 2), "top-left": (0, 0),
                 "bottom-right": (h - ch, w - cw)}[anchor]
    crop = x[..., top:top + ch, left:left + cw]
    return F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)


VIEWS = Registry[View]("TTA view", "see shoulders.explain.list_views()")
for _view in (
    View("identity", lambda x: x),
    View("hflip", lambda x: torch.flip(x, dims=(-1,)), flips=True),
    View("zoom", lambda x: _crop_resized(x, ZOOM, "centre")),
    View("shift-tl", lambda x: _crop_resized(x, SHIFT, "top-left")),
    View("shift-br", lambda x: _crop_resized(x, SHIFT, "bottom-right")),
    View("hflip-zoom", lambda x: _crop_resized(torch.flip(x, dims=(-1,)), ZOOM, "centre"), flips=True),
):
    VIEWS.register(_view.name, _view)


def list_views() -> list[str]:
    """Names of the registered test-time views."""
    return VIEWS.names()


def default_views(hflip: bool) -> list[View]:
    """The views ``tta=True`` uses: identity, a zoom and two shifted crops; with ``hflip``, the mirrored
    identity and zoom as well."""
    return [VIEWS.get(n) for n in default_view_names(hflip)]


def resolve_views(tta: bool | str | Sequence[str | View], hflip: bool) -> list[View] | None:
    """The views a ``tta=`` argument asks for; ``None`` means plain prediction.

    Args:
        tta: ``False`` (plain), ``True`` (:func:`default_views` for this run), a view name, or a list of names
            or :class:`View` objects (an explicit list is used as given, flips included).
        hflip: whether the run allows flips (its ``data.hflip``).
    """
    if tta is False:
        return None
    if tta is True:
        return default_views(hflip)
    items = [tta] if isinstance(tta, (str, View)) else list(tta)
    if not items:
        raise ValueError("tta= got an empty list of views; pass True, False or view names from list_views()")
    views = [item if isinstance(item, View) else VIEWS.get(str(item)) for item in items]
    return views


class TTAModel(nn.Module):
    """Runs ``model`` on every view of a batch: outputs (N, views, classes) logits."""

    def __init__(self, model: nn.Module, views: Sequence[View]) -> None:
        super().__init__()
        self.model = model
        self.views = list(views)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.model(view.apply(x)) for view in self.views], dim=1)


def merge_views(logits: np.ndarray) -> np.ndarray:
    """(N, views, classes) logits → (N, classes) probabilities: softmax per view, then the mean over views."""
    return torch.softmax(torch.from_numpy(logits), dim=-1).mean(dim=1).numpy()
