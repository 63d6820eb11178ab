"""Class-activation heatmaps: Grad-CAM (and its variants) from the ``grad-cam`` package, on the backbone's last
feature stage.

The target layer is found through the model's own structure — timm's ``feature_info``, whose last entry is the
deepest feature stage (``blocks.6`` of an EfficientNet, ``layer4`` of a ResNet, ``Mixed_7c`` of Inception v3,
``features.30`` of a VGG16) — never a hard-coded module name, so every timm backbone works, with a new head
(:class:`~shoulders.models.TransferModel`) or with its own ImageNet classifier.

Maps are computed on the network's input (the resized, centre-cropped tensor) and mapped back onto the original
image's pixels, so a map has the image's size; the part of the image the crop cut off gets 0 (the network never
saw it).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from shoulders._registry import Registry

INSTALL_HINT = 'heatmaps need the grad-cam package: pip install "shoulders[explain]"'
MIN_OVERLAY_SIDE = 160  # overlays of tiny images (8 px digits, 28 px Fashion-MNIST) are upsampled to be readable

# name → class name in pytorch_grad_cam; the gradient-weighted ones need no extra forward passes per channel
CAM_METHODS = Registry[str]("heatmap method", "see shoulders.explain.CAM_METHODS.names()")
CAM_METHODS.register("gradcam", "GradCAM")
CAM_METHODS.register("gradcam++", "GradCAMPlusPlus", ("gradcamplusplus",))
CAM_METHODS.register("hirescam", "HiResCAM")
CAM_METHODS.register("xgradcam", "XGradCAM")
CAM_METHODS.register("layercam", "LayerCAM")
CAM_METHODS.register("eigencam", "EigenCAM")


def _grad_cam_module() -> Any:
    try:
        return importlib.import_module("pytorch_grad_cam")
    except ImportError as error:  # RuntimeError: the CLI turns it into one line, not a trace
        raise RuntimeError(INSTALL_HINT) from error


def _backbone_of(model: nn.Module) -> tuple[nn.Module, str]:
    """The timm network inside ``model`` and its prefix: a TransferModel's ``backbone``, or the model itself."""
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, nn.Module) and hasattr(model, "head"):
        return backbone, "backbone."
    return model, ""


def target_layer(model: nn.Module) -> tuple[str, nn.Module]:
    """The deepest feature stage of ``model``'s backbone, as (qualified name, module).

    Raises:
        ValueError: the backbone declares no ``feature_info`` (not a timm model).
    """
    backbone, prefix = _backbone_of(model)
    info = getattr(backbone, "feature_info", None)
    stages = info.get_dicts() if hasattr(info, "get_dicts") else info
    if not stages:
        raise ValueError(f"{type(backbone).__name__} has no timm feature_info, so its last feature stage is unknown; "
                         "heatmaps need a timm backbone")
    name = stages[-1]["module"]
    return prefix + name, backbone.get_submodule(name)


def _token_reshape(backbone: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Transformers return (batch, tokens, channels): drop the class/register tokens, fold the rest to a grid."""
    prefix_tokens = int(getattr(backbone, "num_prefix_tokens", 0))

    def reshape(x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3:
            return x
        tokens = x[:, prefix_tokens:, :]
        side = int(round(tokens.shape[1] ** 0.5))
        return tokens.reshape(x.shape[0], side, side, x.shape[2]).permute(0, 3, 1, 2)

    return reshape


def heatmaps(model: nn.Module, batch: torch.Tensor, targets: Sequence[int] | None = None,
             method: str = "gradcam") -> np.ndarray:
    """Class-activation maps of ``batch`` (normalised input tensors), one per image, at the input's size.

    Args:
        model: a classifier returning logits; it is put in eval mode (and restored) and run in float32.
        batch: (N, C, H, W) input tensor, already preprocessed.
        targets: the class index to explain per image; ``None`` explains each image's top class.
        method: a name from :data:`CAM_METHODS` (default Grad-CAM).

    Returns:
        float32 array (N, H, W), each map min-max scaled to [0, 1] (all zeros where no evidence was found).
    """
    cams = _grad_cam_module()
    cam_class = getattr(cams, CAM_METHODS.get(method))
    _, layer = target_layer(model)
    backbone, _ = _backbone_of(model)
    device = next(model.parameters()).device
    was_training = model.training
    class_targets = None
    if targets is not None:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        class_targets = [ClassifierOutputTarget(int(t)) for t in targets]
    try:
        # A frozen backbone has no parameter that requires a gradient, so the input must, or the target layer's
        # output would carry no gradient to read.
        inputs = batch.detach().float().to(device).requires_grad_(True)
        with torch.enable_grad(), cam_class(model=model, target_layers=[layer],
                                            reshape_transform=_token_reshape(backbone)) as cam:
            maps = cam(input_tensor=inputs, targets=class_targets)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return np.clip(np.nan_to_num(np.asarray(maps, dtype=np.float32)), 0.0, 1.0)


def crop_box(width: int, height: int, data_config: dict[str, Any]) -> tuple[float, float, float, float]:
    """The part of a ``width`` × ``height`` image that the evaluation transform feeds the network, as
    (left, top, right, bottom) in the image's pixels: timm's resize to ``size / crop_pct`` then centre crop."""
    size_h, size_w = data_config["input_size"][1:]
    crop_pct = data_config.get("crop_pct") or 1.0
    scale_h, scale_w = int(size_h / crop_pct), int(size_w / crop_pct)
    if data_config.get("crop_mode") == "squash":
        new_w, new_h = scale_w, scale_h
    elif height <= width:  # torchvision Resize(int): the shorter side becomes the scale size
        new_h, new_w = scale_h, int(scale_h * width / height)
    else:
        new_w, new_h = scale_w, int(scale_w * height / width)
    top, left = int(round((new_h - size_h) / 2.0)), int(round((new_w - size_w) / 2.0))
    fx, fy = width / new_w, height / new_h
    return left * fx, top * fy, (left + size_w) * fx, (top + size_h) * fy


def to_image(cam: np.ndarray, width: int, height: int, data_config: dict[str, Any]) -> np.ndarray:
    """A map over the network's input, placed back onto the original image's pixels: (height, width) in [0, 1]."""
    left, top, right, bottom = (int(round(v)) for v in crop_box(width, height, data_config))
    out = np.zeros((height, width), dtype=np.float32)
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
    if right <= left or bottom <= top or x1 <= x0 or y1 <= y0:
        return out
    resized = Image.fromarray(np.asarray(cam, dtype=np.float32), mode="F").resize(
        (right - left, bottom - top), Image.BILINEAR)
    out[y0:y1, x0:x1] = np.asarray(resized, dtype=np.float32)[y0 - top:y1 - top, x0 - left:x1 - left]
    return np.clip(out, 0.0, 1.0)


def overlay(image: Image.Image, heatmap: np.ndarray, image_weight: float = 0.5) -> Image.Image:
    """The image with ``heatmap`` (same size, values in [0, 1]) drawn over it in the jet colour map.

    Images smaller than :data:`MIN_OVERLAY_SIDE` are enlarged first (nearest neighbour, so pixels stay crisp).
    """
    _grad_cam_module()
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = image.convert("RGB")
    mask = np.asarray(heatmap, dtype=np.float32)
    if rgb.size != (mask.shape[1], mask.shape[0]):
        raise ValueError(f"heatmap shape {mask.shape} does not match the image size {rgb.size[::-1]}")
    factor = max(1, int(np.ceil(MIN_OVERLAY_SIDE / max(min(rgb.size), 1))))
    if factor > 1:
        size = (rgb.width * factor, rgb.height * factor)
        rgb = rgb.resize(size, Image.NEAREST)
        mask = np.asarray(Image.fromarray(mask, mode="F").resize(size, Image.BILINEAR))
    pixels = np.asarray(rgb, dtype=np.float32) / 255.0
    return Image.fromarray(show_cam_on_image(pixels, np.clip(mask, 0, 1), use_rgb=True, image_weight=image_weight))


def explain_images(model: nn.Module, images: Sequence[Image.Image], transform: Callable[[Image.Image], torch.Tensor],
                   data_config: dict[str, Any], targets: Sequence[int] | None = None, *, method: str = "gradcam",
                   batch_size: int = 16) -> list[np.ndarray]:
    """Heatmaps of PIL ``images`` at each image's own size (see :func:`heatmaps` and :func:`to_image`).

    Args:
        transform: the evaluation transform the model was trained with (PIL image → normalised tensor).
        data_config: the resolved preprocessing (input size, crop) that ``transform`` applies.
        batch_size: images per backward pass; gradients of a whole backbone take memory.
    """
    if targets is not None and len(targets) != len(images):
        raise ValueError(f"got {len(targets)} targets for {len(images)} images; give one class per image or None")
    maps: list[np.ndarray] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        batch = torch.stack([transform(image) for image in chunk])
        chunk_targets = None if targets is None else targets[start:start + batch_size]
        for image, cam in zip(chunk, heatmaps(model, batch, chunk_targets, method=method)):
            maps.append(to_image(cam, image.width, image.height, data_config))
    return maps


def resolve_targets(target: int | str | Sequence[int | str] | None, classes: Sequence[str],
                    n_images: int) -> list[int] | None:
    """A ``target=`` argument as one class index per image; ``None`` stays ``None`` (each image's top class).

    Raises:
        ValueError: an unknown class name, an index out of range, or a list of the wrong length.
    """
    if target is None:
        return None
    items = [target] * n_images if isinstance(target, (int, str, np.integer)) else list(target)
    if len(items) != n_images:
        raise ValueError(f"target= has {len(items)} entries for {n_images} images; give one class, or one per image")
    out = []
    for item in items:
        if isinstance(item, str):
            if item not in classes:
                raise ValueError(f"target={item!r} is not a class of this classifier; classes_ are "
                                 f"{', '.join(list(classes)[:10])}{'…' if len(classes) > 10 else ''}")
            out.append(list(classes).index(item))
        elif not 0 <= int(item) < len(classes):
            raise ValueError(f"target={item} is outside 0..{len(classes) - 1} (class indices into classes_)")
        else:
            out.append(int(item))
    return out
