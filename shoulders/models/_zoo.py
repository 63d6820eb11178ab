"""The curated backbone registry behind ``shoulders zoo``: timm names, friendly aliases, and what each offers.

Any timm model name works with :func:`create_backbone`; the registry only adds aliases, a description and the
order ``shoulders zoo`` shows them in (small and bundled first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shoulders._registry import Registry
from shoulders.config import DEFAULT_BACKBONE  # noqa: F401 - exported by shoulders.models; defined once, in config
from shoulders.models._facts import is_timm_model, timm_facts, timm_names, timm_pretrained_tags
from shoulders.models._sources import offline_status


@dataclass(frozen=True)
class BackboneSpec:
    """A curated backbone: its timm name and a one-line description of when to choose it."""

    name: str
    description: str


@dataclass(frozen=True)
class BackboneInfo:
    """What ``shoulders zoo`` prints about one backbone.

    Attributes:
        name: the timm model name.
        aliases: shorter names that resolve to it.
        description: when to choose it.
        input_size: side of the square input the pretrained weights were trained at (timm's pretrained_cfg).
        params_m: millions of parameters without the classifier, i.e. what a fine-tune trains.
        num_features: size of the pooled feature vector the head receives.
        offline: pretrained weights are usable right now without network.
        weights_source: where they come from ("bundled (…)", "timm cache") or what to do to get them.
    """

    name: str
    aliases: tuple[str, ...]
    description: str
    input_size: int
    params_m: float
    num_features: int
    offline: bool
    weights_source: str


BACKBONES = Registry[BackboneSpec]("backbone", "see `shoulders zoo`")


def register_backbone(name: str, description: str, aliases: tuple[str, ...] = ()) -> BackboneSpec:
    """Adds a curated backbone; the name must be a timm model and no alias may shadow a timm model name.

    Raises:
        ValueError: ``name`` is not a timm model, an alias is itself a timm model name (it would silently pick
            a different network), or a name is already registered.
    """
    if not is_timm_model(name):
        raise ValueError(f"cannot register backbone {name!r}: timm has no such model (see timm.list_models())")
    shadowing = [a for a in aliases if is_timm_model(a)]
    if shadowing:
        raise ValueError(
            f"alias {shadowing[0]!r} for {name!r} is already a timm model name; aliases must not hide timm models"
        )
    return BACKBONES.register(name, BackboneSpec(name, description), aliases)


register_backbone(
    "tf_efficientnet_lite0",
    "EfficientNet-Lite0; the default: weights ship with pip, fast on CPU",
    ("lite0", "efficientnet-lite0"),
)
register_backbone(
    "tf_efficientnet_lite1",
    "EfficientNet-Lite1 at 240 px; a bit more accurate, ~1.5x the compute of Lite0",
    ("lite1", "efficientnet-lite1"),
)
register_backbone(
    "tf_efficientnet_lite2",
    "EfficientNet-Lite2 at 260 px; the largest Lite variant with a pip weights package",
    ("lite2", "efficientnet-lite2"),
)
register_backbone(
    "mobilenetv2_100", "MobileNetV2; small and quick, a classic mobile baseline", ("mobilenetv2", "mobilenet")
)
register_backbone("mobilenetv3_large_100", "MobileNetV3-Large; faster than V2 at similar accuracy", ("mobilenetv3",))
register_backbone("efficientnet_b0", "EfficientNet-B0 (timm-trained); stronger than Lite0, with SE blocks", ())
register_backbone("resnet50", "ResNet-50; the standard reference backbone", ("resnet",))
register_backbone("inception_v3", "Inception v3 at 299 px; as in the Keras transfer-learning guides", ("inception",))
register_backbone("vgg16", "VGG-16; very large and slow on CPU; kept for comparison with older recipes", ("vgg",))


def resolve_backbone_name(name: str) -> str:
    """Turns an alias or any timm model name (optionally with a ``.tag``) into the timm name to build.

    Raises:
        ValueError: neither a registered name/alias nor a timm model; the message suggests the closest name.
    """
    if name in BACKBONES:
        return BACKBONES.canonical(name)
    known = timm_names()  # the snapshot of timm's model names: a typo fails without importing timm
    if known is not None:
        arch, dot, _ = name.partition(".")
        if arch not in known:
            raise ValueError(BACKBONES.unknown_message(name, tuple(sorted(known))))
        tags = timm_pretrained_tags(arch) if dot else []
        if not dot or name in tags:
            return name
        raise ValueError(f"unknown pretrained tag in {name!r}; timm has: {', '.join(tags) or 'none'}")
    import timm  # a timm version the snapshot was not read from: ask it

    if timm.is_model(name):
        if "." in name and name not in timm.list_pretrained(name):
            arch = name.split(".", 1)[0]
            tags = ", ".join(timm.list_pretrained(f"{arch}.*")) or "none"
            raise ValueError(f"unknown pretrained tag in {name!r}; timm has: {tags}")
        return name
    raise ValueError(BACKBONES.unknown_message(name, tuple(timm.list_models())))


def feature_dim(model: Any) -> int:
    """Size of what the model returns once its classifier is removed.

    This is timm's ``head_hidden_size`` when set: VGG and MobileNetV3 keep a pre-logits layer (4096 and 1280
    wide) after the ``num_features`` channels, so ``num_features`` alone would be wrong for them.
    """
    return int(getattr(model, "head_hidden_size", None) or model.num_features)


def backbone_info(name: str) -> BackboneInfo:
    """Describes one backbone, curated or any timm name; the offline status is checked now, not cached."""
    timm_name = resolve_backbone_name(name)
    facts = timm_facts(timm_name)
    offline, source = offline_status(timm_name)
    spec = BACKBONES.get(timm_name) if timm_name in BACKBONES else None
    return BackboneInfo(
        name=timm_name,
        aliases=tuple(BACKBONES.aliases_of(timm_name)),
        description=spec.description if spec else "timm model",
        input_size=facts.input_size,
        params_m=facts.params_m,
        num_features=facts.num_features,
        offline=offline,
        weights_source=source,
    )


def list_backbones() -> list[BackboneInfo]:
    """The curated backbones, small and bundled first, each with whether its weights work offline now."""
    return [backbone_info(name) for name in BACKBONES.names()]
