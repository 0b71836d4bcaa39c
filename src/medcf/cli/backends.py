"""The models that are not 2-D latent diffusion: 3-D volume models (medcf.volumes) and GANs (model.backend=gan),
as the editing commands meet them."""

from __future__ import annotations

from pathlib import Path

from medcf.cli.app import echo


def other_backend(model: Path, **diffusion_only: object) -> bool:
    """Whether `model` is a 3-D or a GAN model (not the 2-D diffusion engines'); refuses the options only those have
    (engine and mask, given other than their defaults)."""
    from medcf.models import is_gan_folder, is_volume_folder

    other = is_volume_folder(model) or is_gan_folder(model)
    defaults = {"engine": "inversion", "mask": None, "null_text": False, "image_guidance": None}
    if other and (given := [name for name, value in diffusion_only.items() if value != defaults[name]]):
        names = ", ".join(f"--{name.replace('_', '-')}" for name in given)
        raise ValueError(f"{model}: {names} belong to the 2-D diffusion engines; drop them for this model")
    return other


def counterfactual_other_backend(model: Path, image: Path, edits: list[str], out: Path, **options) -> None:
    """A 3-D diffusion model edits a NIfTI volume by DDIM inversion; a GAN (2-D, or 3-D on NIfTI volumes) edits by
    inverting its noise z."""
    from medcf.models import is_gan_folder

    common = {"row": options["row"], "device": options["device"], "precision": options["precision"],
              "show_names": options["record_names"], "patient_info": options["patient_info"]}  # fmt: skip
    if is_gan_folder(model):
        from medcf.editing.gan_to_folder import gan_counterfactual_to_folder

        edit = {"index": options["index"], "residual": options["residual"]}
        folder = gan_counterfactual_to_folder(model, image, edits, out, **edit, **common)
        volume = folder / "change.nii.gz"  # only a volume's folder has it: an image's has difference.png
        result = folder / ("counterfactual.nii.gz" if volume.is_file() else "counterfactual.png")
        echo(f"counterfactual: {result}\nreport: {folder / 'index.html'}")
        return
    from medcf.editing.volume_to_folder import counterfactual_volume_to_folder

    folder = counterfactual_volume_to_folder(
        model, image, edits, out, strength=options["strength"], num_inference_steps=options["steps"],
        guidance_scale=options["guidance"], latent_drift=options["drift"], residual=options["residual"], **common,
    )  # fmt: skip
    echo(f"counterfactual: {folder / 'counterfactual.nii.gz'}\nreport: {folder / 'index.html'}")
