"""Medical images and their clinical tables: reading, cohorts of canonical rows, training datasets."""

from .cohort import Cohort
from .dataset import ImageTextDataset, collate_items
from .io import IMAGE_SUFFIXES, read_image, read_images, write_image, write_png
from .longitudinal import longitudinal_pairs, slice_pairs
from .split import split_by_patient

__all__ = [
    "IMAGE_SUFFIXES",
    "Cohort",
    "ImageTextDataset",
    "collate_items",
    "longitudinal_pairs",
    "read_image",
    "read_images",
    "slice_pairs",
    "split_by_patient",
    "write_image",
    "write_png",
]
