"""Dataset adapters: each reads one public dataset's layout into a Cohort of canonical clinical rows."""

from .brain import brain_mri
from .chexpert import chexpert
from .covid import covid_radiography
from .folder import image_folder
from .mimic import mimic_cxr
from .nih import nih_chestxray14

__all__ = ["brain_mri", "chexpert", "covid_radiography", "image_folder", "mimic_cxr", "nih_chestxray14"]
