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
    names = ["identity", "zoom", "shift-tl", "shift-br"] + (["hflip", "hflip-zoom"] if hflip else [])
    return [VIEWS.get(n) for n in names]


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


@dataclass(frozen=True)
class TTADecision:
    """Whether a run predicts with TTA by default, with which views, why, and at what measured cost."""

    enabled: bool  # tta=None predicts with ``views``
    views: tuple[str, ...]  # what tta=True uses for this run
    reason: str
    cost: float  # measured inference time of ``views`` relative to plain prediction

    def to_dict(self) -> dict[str, object]:
        return {"enabled": self.enabled, "views": list(self.views), "reason": self.reason, "cost": self.cost}


# Test-accuracy change in points over plain prediction, per view set and benchmark data set, and the inference
# time it costs (× plain, the median over the sets), from ``python -m benchmarks --profile quick tta``
# (benchmarks/README.md, "Test-time augmentation"; one seed, the plan's own model per data set at 64 px — full
# fine-tuning on digits and Fashion-MNIST, the frozen head on the photos; 2026-12-01 11:17 UTC, results/tta-quick.json).
MEASURED: dict[str, dict[str, float]] = {
    "scale/crop": {"digits": -0.56, "fashion-100": -0.77, "photos": 0.0},
    "scale/crop + flips": {"digits": -0.28, "fashion-100": -0.94, "photos": 0.0},
}
MEASURED_COST: dict[str, float] = {"scale/crop": 3.3, "scale/crop + flips": 5.1}
FLIP_FREE_SETS = ("digits",)  # where flips are wrong (a mirrored digit is another symbol): not evidence for flips
MIN_GAIN = 0.5  # points: a default that multiplies inference time must buy at least this on every measured set


def tta_decision(hflip: bool) -> TTADecision:
    """The rule that turns TTA on by default (``tta=None``): only where it paid on every benchmark set it
    applies to, by at least :data:`MIN_GAIN` points, for the views this run may use.

    Args:
        hflip: whether the run allows flips (its ``data.hflip``; the ImageNet head's photos do).
    """
    name = "scale/crop + flips" if hflip else "scale/crop"
    measured = {k: v for k, v in MEASURED[name].items() if not (hflip and k in FLIP_FREE_SETS)}
    views = tuple(v.name for v in default_views(hflip))
    cost = MEASURED_COST[name]
    summary = ", ".join(f"{k} {v:+.2f}" for k, v in measured.items()) or "not measured"
    if measured and min(measured.values()) >= MIN_GAIN:
        return TTADecision(True, views, f"{name} views measured {summary} points at {cost:g}x the inference "
                                        f"time (at least {MIN_GAIN} everywhere): on by default", cost)
    return TTADecision(False, views, f"{name} views measured {summary} points at {cost:g}x the inference "
                                     f"time, not the {MIN_GAIN} points everywhere that would pay for it: off by "
                                     "default (tta=True, or `shoulders predict --tta` / `shoulders evaluate --tta`, "
                                     "turns it on)", cost)
