"""When test-time augmentation is on by default: the measured rule, without torch (``shoulders predict`` decides
its road before importing anything heavy). The views themselves live in ``tta``."""

from __future__ import annotations

from dataclasses import dataclass


def default_view_names(hflip: bool) -> list[str]:
    """The views ``tta=True`` uses: identity, a zoom and two shifted crops; with ``hflip``, the mirrored identity
    and zoom as well."""
    return ["identity", "zoom", "shift-tl", "shift-br"] + (["hflip", "hflip-zoom"] if hflip else [])


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
    views = tuple(default_view_names(hflip))
    cost = MEASURED_COST[name]
    summary = ", ".join(f"{k} {v:+.2f}" for k, v in measured.items()) or "not measured"
    if measured and min(measured.values()) >= MIN_GAIN:
        return TTADecision(True, views, f"{name} views measured {summary} points at {cost:g}x the inference "
                                        f"time (at least {MIN_GAIN} everywhere): on by default", cost)
    return TTADecision(False, views, f"{name} views measured {summary} points at {cost:g}x the inference "
                                     f"time, not the {MIN_GAIN} points everywhere that would pay for it: off by "
                                     "default (tta=True, or `shoulders predict --tta` / `shoulders evaluate --tta`, "
                                     "turns it on)", cost)
