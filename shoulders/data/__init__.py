"""Data: sources (folders, CSV, arrays), splits, bad-image handling, and transforms from the backbone's config."""

from shoulders.data.builtin import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    PHOTO_NAMES,
    fashion_mnist_available,
    load_digits_arrays,
    load_fashion_mnist,
    load_photos_arrays,
    write_image_folder,
)
from shoulders.data._readers import samples_from_arrays
from shoulders.data.duplicates import ON_DUPLICATE, DuplicateReport, find_duplicates
from shoulders.data.images import IMAGE_EXTENSIONS, BadImage, BadImageError, collect_paths, open_image
from shoulders.data.loader import ImageDataset, make_loader
from shoulders.data.samples import DataSplits, Samples
from shoulders.data.sources import ON_BAD_IMAGE, load_data, load_labelled
from shoulders.data.transforms import AUGMENTATIONS, create_transforms, list_augmentations, resolve_data_config

__all__ = [
    "AUGMENTATIONS",
    "BadImage",
    "BadImageError",
    "DataSplits",
    "DuplicateReport",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "IMAGE_EXTENSIONS",
    "ImageDataset",
    "ON_BAD_IMAGE",
    "ON_DUPLICATE",
    "PHOTO_NAMES",
    "Samples",
    "collect_paths",
    "create_transforms",
    "fashion_mnist_available",
    "find_duplicates",
    "list_augmentations",
    "load_data",
    "load_digits_arrays",
    "load_labelled",
    "load_fashion_mnist",
    "load_photos_arrays",
    "make_loader",
    "open_image",
    "resolve_data_config",
    "samples_from_arrays",
    "write_image_folder",
]
