"""Evaluation metrics on tensors and features: image similarity, FID/KID, attribution localisation."""

from .attribution import (
    auroc_resamples,
    dice_otsu,
    normalized_cross_correlation,
    otsu_threshold,
    percentile_interval,
    pixel_auroc,
)
from .distribution import frechet_distance, kernel_inception_distance
from .features import EfficientNetLite0Features, FeatureExtractor, extract_features, fid_kid
from .image import diversity, ms_ssim, ms_ssim_settings, psnr, ssim
from .inception import TorchScriptInceptionFeatures
from .volumes import axial_slices, ct_features, volume_frechet_distance

__all__ = [
    "EfficientNetLite0Features",
    "auroc_resamples",
    "axial_slices",
    "ct_features",
    "FeatureExtractor",
    "dice_otsu",
    "diversity",
    "extract_features",
    "fid_kid",
    "frechet_distance",
    "kernel_inception_distance",
    "ms_ssim",
    "ms_ssim_settings",
    "normalized_cross_correlation",
    "percentile_interval",
    "otsu_threshold",
    "pixel_auroc",
    "psnr",
    "ssim",
    "volume_frechet_distance",
    "TorchScriptInceptionFeatures",
]
