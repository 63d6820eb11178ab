"""One forward pass of the pretrained network over a small sample of the data, and everything read off it.

From that single pass the advisor takes: the pooled features (for the transferability scores), the ImageNet
head's softmax (for how confidently the network recognises the images), the pooled output of every coarse block
(for the depth probe), and the activation statistics entering each BatchNorm layer, which are compared with the
running statistics the layer learned on ImageNet (a distance to natural photos that needs no reference data).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..data import ImageDataset, Samples, create_transforms, make_loader
from ..models import backbone_blocks
from .distance import feature_distribution_distance

# A few hundred images: the similarity moves by ~0.001 between sample seeds, the probe by 2-3 points, and a 224 px
# pass stays a few seconds on a CPU.
DEFAULT_SAMPLE_SIZE = 300
MIN_PER_CLASS = 3  # the probe's stratified folds and GBC's class variances need a few images of every class
_POSITIONS_PER_IMAGE = 16  # spatial positions kept per image and BatchNorm layer: bounded memory at any size


@dataclass
class SampleMeasurement:
    """What one forward pass over the sample produced.

    Attributes:
        labels: (N,) target labels of the sampled images.
        features: (N, D) pooled features of the top of the backbone (what a new head sees).
        source_probs: (N, Z) softmax of the pretrained ImageNet head, or None when no head was available.
        block_features: per coarse block, bottom to top: (name, (N, D_k) globally average-pooled output).
        bn_distance: per BatchNorm layer, bottom to top: (module name, the standardised Fréchet distance between
            the sample's activations entering it and the running statistics it stores from pretraining).
        seconds: wall time of the pass.
    """

    labels: np.ndarray
    features: np.ndarray
    source_probs: np.ndarray | None
    block_features: list[tuple[str, np.ndarray]] = field(default_factory=list)
    bn_distance: list[tuple[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def sample_indices(labels: np.ndarray, sample_size: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded, class-balanced sample of at most ``sample_size`` images.

    Every class gets an equal share (at least ``MIN_PER_CLASS`` where it has that many), so a rare class is still
    measured; classes smaller than their share give all their images.
    """
    if sample_size < 1:
        raise ValueError(f"sample_size must be at least 1 image, got {sample_size}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    share = max(sample_size // max(len(classes), 1), MIN_PER_CLASS)
    chosen = []
    for label in classes:
        idx = np.flatnonzero(labels == label)
        chosen.append(rng.choice(idx, size=min(share, len(idx)), replace=False))
    return np.sort(np.concatenate(chosen))


def _block_output_modules(backbone: nn.Module) -> list[tuple[str, nn.Module]]:
    """The module whose output ends each coarse block: the last top-level module the block's name lists.

    The block names come from timm's ``group_matcher`` (``"blocks.3"``, ``"blocks.6, conv_head, bn2"``,
    ``"layer2"``), so the probe follows the same units as ``--trainable-blocks`` on any architecture.
    """
    _, blocks = backbone_blocks(backbone)
    modules = dict(backbone.named_modules())
    out = []
    for block in blocks:
        last = block.name.split(", ")[-1]
        if last in modules:
            out.append((block.name, modules[last]))
    return out


class _Recorder:
    """Forward hooks that pool block outputs and sample BatchNorm inputs during the one pass."""

    def __init__(self, backbone: nn.Module, seed: int) -> None:
        self.blocks = _block_output_modules(backbone)
        norms = [(n, m) for n, m in backbone.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                 and m.track_running_stats and m.running_mean is not None]
        self.norm_names = [n for n, _ in norms]
        self.norms = [m for _, m in norms]
        self.pooled: list[list[torch.Tensor]] = [[] for _ in self.blocks]
        self.norm_rows: list[list[torch.Tensor]] = [[] for _ in self.norms]
        self.generator = torch.Generator().manual_seed(seed)
        self.handles: list[Any] = []

    def __enter__(self) -> "_Recorder":
        for i, (_, module) in enumerate(self.blocks):
            self.handles.append(module.register_forward_hook(self._pool_hook(i)))
        for i, module in enumerate(self.norms):
            self.handles.append(module.register_forward_pre_hook(self._norm_hook(i)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()

    def _pool_hook(self, i: int) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            if output.ndim == 4:
                self.pooled[i].append(output.float().mean(dim=(2, 3)).cpu())
        return hook

    def _norm_hook(self, i: int) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0].float()
            if x.ndim != 4:
                return
            rows = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])  # (batch, positions, channels)
            keep = min(_POSITIONS_PER_IMAGE, rows.shape[1])
            pick = torch.randperm(rows.shape[1], generator=self.generator)[:keep]
            self.norm_rows[i].append(rows[:, pick.to(rows.device)].reshape(-1, x.shape[1]).cpu())
        return hook

    def block_features(self) -> list[tuple[str, np.ndarray]]:
        return [(name, torch.cat(parts).numpy()) for (name, _), parts in zip(self.blocks, self.pooled) if parts]

    def bn_distances(self) -> list[tuple[str, float]]:
        out = []
        for name, module, parts in zip(self.norm_names, self.norms, self.norm_rows):
            if parts:
                ref_var = module.running_var.detach().double().cpu().numpy() + module.eps
                rows = torch.cat(parts).double().numpy()
                out.append((name, feature_distribution_distance(
                    rows, module.running_mean.detach().double().cpu().numpy(), ref_var)))
        return out


def distances_by_block(backbone: nn.Module, bn_distance: list[tuple[str, float]]) -> list[tuple[str, list[float]]]:
    """Groups per-BatchNorm distances by the coarse block that owns each layer (bottom to top; the stem left out)."""
    _, blocks = backbone_blocks(backbone)
    owner = {p[: -len(".weight")]: i for i, b in enumerate(blocks) for p in b.param_names if p.endswith(".weight")}
    grouped: list[list[float]] = [[] for _ in blocks]
    for name, distance in bn_distance:
        if name in owner:
            grouped[owner[name]].append(distance)
    return [(b.name, g) for b, g in zip(blocks, grouped)]


@torch.inference_mode()
def measure_sample(backbone: nn.Module, samples: Samples, data_config: dict[str, Any], *,
                   classifier: nn.Module | None, device: torch.device, sample_size: int = DEFAULT_SAMPLE_SIZE,
                   seed: int = 0, batch_size: int = 64) -> SampleMeasurement:
    """Runs the frozen ``backbone`` (and the ImageNet ``classifier`` on its pooled features) over a sample.

    Args:
        backbone: a timm network returning pooled features (its classifier removed), pretrained weights loaded.
        samples: the labelled images to sample from (the training pool).
        data_config: preprocessing (``resolve_data_config``); evaluation transform, no augmentation.
        classifier: the pretrained ImageNet head, applied to the pooled features; None skips the head's scores.
        device: where the pass runs; fp32, since the sample is small and the statistics should not carry
            bf16 rounding.
        sample_size: at most this many images, class-balanced.
        seed: which images are sampled.
        batch_size: images per forward batch.
    """
    start = time.perf_counter()
    subset = samples.subset(sample_indices(samples.labels, sample_size, seed))
    _, eval_tf = create_transforms(data_config)
    loader = make_loader(ImageDataset(subset, eval_tf), batch_size, shuffle=False, device=device, num_workers=0)
    was_training = backbone.training
    backbone.eval()
    features, logits = [], []
    try:
        with _Recorder(backbone, seed) as recorder:
            for images, _ in loader:
                pooled = backbone(images.to(device)).float()
                features.append(pooled.cpu())
                if classifier is not None:
                    logits.append(classifier.to(device)(pooled).float().cpu())
    finally:
        backbone.train(was_training)
    probs = torch.softmax(torch.cat(logits).double(), dim=1).numpy() if logits else None
    return SampleMeasurement(labels=subset.labels.copy(), features=torch.cat(features).numpy().astype(np.float64),
                             source_probs=probs, block_features=recorder.block_features(),
                             bn_distance=recorder.bn_distances(), seconds=time.perf_counter() - start)
