"""Data: sources (folders, CSV, arrays), splits, bad-image handling, and transforms from the backbone's config.

Names are imported on first use (``lazy_loader``), so reading images does not import timm, nor splitting them
scikit-learn, before either is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "builtin": ["FASHION_MNIST_CLASSES", "FASHION_MNIST_DIR", "PHOTO_NAMES", "fashion_mnist_available",
                "load_digits_arrays", "load_fashion_mnist", "load_photos_arrays", "write_image_folder"],
    "_readers": ["samples_from_arrays"],
    "duplicates": ["ON_DUPLICATE", "DuplicateReport", "find_duplicates"],
    "images": ["IMAGE_EXTENSIONS", "BadImage", "BadImageError", "collect_paths", "open_image"],
    "loader": ["ImageDataset", "make_loader"],
    "samples": ["DataSplits", "Samples"],
    "sources": ["ON_BAD_IMAGE", "load_data", "load_labelled"],
    "augment": ["AUGMENTATIONS", "list_augmentations"],
    "transforms": ["create_transforms", "resolve_data_config"],
})

if TYPE_CHECKING:
    from shoulders.data._readers import samples_from_arrays
    from shoulders.data.augment import AUGMENTATIONS, list_augmentations
    from shoulders.data.builtin import (FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, PHOTO_NAMES,
                                        fashion_mnist_available, load_digits_arrays, load_fashion_mnist,
                                        load_photos_arrays, write_image_folder)
    from shoulders.data.duplicates import ON_DUPLICATE, DuplicateReport, find_duplicates
    from shoulders.data.images import IMAGE_EXTENSIONS, BadImage, BadImageError, collect_paths, open_image
    from shoulders.data.loader import ImageDataset, make_loader
    from shoulders.data.samples import DataSplits, Samples
    from shoulders.data.sources import ON_BAD_IMAGE, load_data, load_labelled
    from shoulders.data.transforms import create_transforms, resolve_data_config
