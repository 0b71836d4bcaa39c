"""Dataset adapters: each reads one public dataset's layout into a Cohort of canonical clinical rows."""

from .adni import adni
from .brain import brain_mri
from .chexpert import chexpert
from .covid import covid_radiography
from .folder import image_folder
from .mimic import mimic_cxr
from .nih import nih_chestxray14
from .oasis import oasis1, oasis2
from .oasis3 import oasis3

__all__ = [
    "adni", "brain_mri", "chexpert", "covid_radiography", "image_folder", "mimic_cxr", "nih_chestxray14", "oasis1",
    "oasis2", "oasis3",
]  # fmt: skip
