"""The classic FID Inception-v3 (2048-d pool features) from a local TorchScript file: `fid_inception`.

No Inception weights ship with medcf and nothing is downloaded: point `path` at `inception-2015-12-05.pt`, the
TorchScript translation of TensorFlow's 2015-12-05 Inception graph that NVIDIA published for StyleGAN2-ADA and
that clean-fid also loads. Calling convention, as both use it:
- NVlabs/stylegan2-ada-pytorch `metrics/metric_utils.py`: `torch.jit.load(f).eval().to(device)`, then
  `detector(images, return_features=True)` with `detector_kwargs = dict(return_features=True)` in
  `metrics/frechet_inception_distance.py`; images are NCHW, 3 channels, 0–255 (uint8 there).
- GaParmar/clean-fid `cleanfid/inception_torchscript.py` (`InceptionV3W`): `self.base(x, return_features=True)
  .view((bs, 2048))` for "Image with values in range [0,255]", float.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .features import rgb_at

INPUT_SIZE = 299  # Inception-v3 input side (Szegedy et al. 2016); clean-fid resize_inside=True leaves it to the module
FILE_NAME = "inception-2015-12-05.pt"


class TorchScriptInceptionFeatures:
    """Inception-v3 pool features (B, 2048) from the TorchScript `inception-2015-12-05.pt` at `path`.

    Preprocessing: grey (C = 1) is repeated to 3 channels; images are resized to 299×299 bilinear with
    antialias (no crop, aspect ratio not kept) and scaled from [0, 1] to float 0–255 (not rounded to uint8).
    The module normalises the range itself. Eval mode, no grad.
    """

    name = "inception"
    resize = f"{INPUT_SIZE} bilinear"

    def __init__(self, path: str | Path, *, device: str | torch.device = "cpu") -> None:
        self.path, self.device = Path(path), torch.device(device)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"{self.path}: no such file; pass the path of a local {FILE_NAME} (clean-fid / StyleGAN2-ADA metrics)"
            )
        try:
            self.model = torch.jit.load(str(self.path), map_location=self.device).eval()
        except RuntimeError as error:
            summary = str(error).splitlines()[0].split(". ")[0]  # torch appends a long hint after the cause
            raise ValueError(
                f"{self.path}: not a TorchScript file ({summary}); a state dict such as pytorch-fid's "
                f"pt_inception-2015-12-05-6726825d.pth will not do, pass the TorchScript {FILE_NAME}"
            ) from None

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        pixels = rgb_at(images, INPUT_SIZE, self.device)
        features = self.model(pixels * 255, return_features=True)
        if features.dim() != 2 or features.shape[0] != len(images):
            raise ValueError(
                f"{self.path}: returned shape {tuple(features.shape)} for {len(images)} images, not (B, D) pool "
                f"features; pass the TorchScript {FILE_NAME}, which returns (B, 2048) with return_features=True"
            )
        return features.float().cpu()
