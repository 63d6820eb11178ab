"""``ImageDataset`` and ``make_loader``: ``Samples`` → batches, reproducibly and without oversubscribing CPUs."""

from __future__ import annotations

import os
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from shoulders.data.samples import Samples


class ImageDataset(Dataset):
    """Yields ``(transform(image), label)`` for each image of ``samples``.

    Args:
        samples: the images and labels.
        transform: applied to the RGB PIL image (e.g. from :func:`create_transforms`); ``None`` yields the image.
    """

    def __init__(self, samples: Samples, transform: Callable[[Any], Any] | None) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        image = self.samples.load(i)
        return (self.transform(image) if self.transform is not None else image), int(self.samples.labels[i])


def available_cpus() -> int:
    """CPUs this process may use (the affinity mask, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_num_workers(device: torch.device) -> int:
    """Loader processes for a device: none on a small CPU-only box, where workers would steal the cores that
    run the model; otherwise one per spare core, capped at 8 (decoding small images does not need more)."""
    cpus = available_cpus()
    if device.type != "cuda" and cpus <= 2:
        return 0
    return max(0, min(8, cpus - 1))


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    device: str | torch.device = "cpu",
    num_workers: int | None = None,
    drop_last: bool = False,
    sampler: Sampler | None = None,
) -> DataLoader:
    """A ``DataLoader`` whose shuffling (and worker random state) is fixed by ``seed``.

    Args:
        dataset: e.g. an :class:`ImageDataset`.
        batch_size: images per batch.
        shuffle: reshuffle each epoch (ignored when ``sampler`` is given, since the sampler decides order).
        seed: seeds the loader's generator, hence the order and each worker's RNGs.
        device: where batches go; CUDA turns on pinned memory and persistent workers.
        num_workers: loader processes; ``None`` picks :func:`default_num_workers`.
        drop_last: drop a last incomplete batch (keeps BatchNorm away from tiny batches in training).
        sampler: e.g. a ``DistributedSampler``; replaces ``shuffle``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    device = torch.device(device)
    workers = default_num_workers(device) if num_workers is None else num_workers
    cuda = device.type == "cuda"
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        pin_memory=cuda,
        persistent_workers=cuda and workers > 0,
        drop_last=drop_last,
        generator=generator,
    )
