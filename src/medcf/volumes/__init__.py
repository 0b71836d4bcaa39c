"""Volumes (3-D latent diffusion): sampling, DDIM inversion and counterfactual edits of (B, 1, X, Y, Z) volumes."""

from medcf.volumes.counterfactual import counterfactual_volumes
from medcf.volumes.files import counterfactual_nifti, generate_nifti, model_value_range
from medcf.volumes.inversion import ddim_invert_volumes
from medcf.volumes.sampling import generate_volumes, volume_drift

__all__ = [
    "counterfactual_nifti",
    "counterfactual_volumes",
    "ddim_invert_volumes",
    "generate_nifti",
    "generate_volumes",
    "model_value_range",
    "volume_drift",
]
