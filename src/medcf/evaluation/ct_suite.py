"""ct-synth: DGM-VLC's 3-D chest CT experiment (Xing et al. 2024, arXiv:2410.13823) at CPU scale.

One semi-synthetic CT cohort (`medcf synth ct`, with every patient's true counterfactual volumes), its clinical
table turned into text ("table" prompts: DGM-VLC's table-to-text conditioning), and the two generators DGM-VLC
says its pipeline serves: a 3-D latent diffusion model (MONAI networks, models/volume.py) and a 3-D conditional
GAN (models/gan.py), trained on the same volumes and scored side by side. Each training run is a list of
`medcf train --set` overrides, so either model is reproducible by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

CT_SUITE = "ct-synth"
MODALITY = "chest CT"
BACKENDS = ("diffusion", "GAN")


@dataclass(frozen=True)
class CtSize:
    """How big each stage is: `quick` for CI (toy models, minutes), `full` for the committed table."""

    subjects: int
    side: int  # in-plane voxels of the cohort's volumes; their depth is half of it (medcf synth ct)
    tiny: bool  # toy-size models instead of a trained 3-D VAE + scratch U-Net / CPU-sized GAN
    vae_steps: int
    diffusion_steps: int
    gan_steps: int
    batch_size: int
    eval_samples: int  # held-out rows sampled per model for the distances
    eval_steps: int  # DDIM steps when sampling and editing
    effect_pairs: int  # matched pairs of the smoking effect map
    edit_cases: int  # unseen patients per edit
    inversion_steps: int  # Adam steps of the GAN's z inversion
    checkpoint_every: int


# full: 32 × 32 × 16 volumes (11.25 mm in-plane) fit one CPU session (on one thread: the VAE 11 min, the U-Net
# 3.3 s and the GAN 1 s per step); DGM-VLC's 64 × 64 × 32 volumes (`medcf synth ct --size 64`) want a GPU
CT_SIZES = {
    "quick": CtSize(
        subjects=24, side=32, tiny=True, vae_steps=0, diffusion_steps=4, gan_steps=4, batch_size=2, eval_samples=4,
        eval_steps=2, effect_pairs=4, edit_cases=2, inversion_steps=3, checkpoint_every=0,
    ),
    "full": CtSize(
        subjects=800, side=32, tiny=False, vae_steps=800, diffusion_steps=1000, gan_steps=3000, batch_size=8,
        eval_samples=40, eval_steps=20, effect_pairs=32, edit_cases=8, inversion_steps=200, checkpoint_every=250,
    ),
}  # fmt: skip


def vae_overrides(size: CtSize, data: str, seed: int) -> tuple[str, ...]:
    """The 3-D KL autoencoder: ×2 downsampling (two levels), 4 latent channels, on whole volumes."""
    return (
        "model.spatial_dims=3", f"data.root={data}", f"data.modality={MODALITY}", "vae.block_out_channels=[16,32]",
        "vae.latent_channels=4", f"vae.max_steps={size.vae_steps}", f"vae.batch_size={size.batch_size}",
        "vae.learning_rate=3e-4", f"train.seed={seed}",
    )  # fmt: skip


def model_overrides(size: CtSize, backend: str, data: str, vae: str, seed: int) -> tuple[str, ...]:
    """`medcf train` overrides of the suite's diffusion or GAN model on whole volumes with table prompts."""
    common = (
        "model.spatial_dims=3", f"data.root={data}", f"data.modality={MODALITY}", "data.prompt_style=table",
        f"train.batch_size={size.batch_size}", f"train.seed={seed}", f"train.checkpoint_every={size.checkpoint_every}",
        "train.sample_every=0", "sample.num_images=4", f"sample.num_inference_steps={size.eval_steps}",
        *(("model.tiny=true",) if size.tiny else ()),
    )  # fmt: skip
    if backend == "GAN":  # a quarter of the default widths' cost per step: 1 s per batch of 8 on one CPU thread
        widths = () if size.tiny else ("gan.block_out_channels=[128,64,32,16]", "gan.discriminator_channels=32")
        return (*common, "model.backend=gan", *widths, f"train.max_steps={size.gan_steps}", "train.learning_rate=2e-4")
    if backend != "diffusion":
        raise ValueError(f"backend {backend!r}: use one of {', '.join(BACKENDS)}")
    vae_option = () if size.tiny else (f"model.vae={vae}",)
    # v-prediction with Min-SNR-5 weighting: an ε-model's error at t = 999 reaches z_0 multiplied by √(1−ᾱ)/√ᾱ ≈ 15,
    # and 1000 ε-steps (held-out ε-MSE 0.006 there) sampled noise-textured volumes (lung −580 HU, volume FID 11.6)
    objective = ("train.prediction_type=v_prediction", "train.snr_gamma=5")
    return (*common, *vae_option, *objective, f"train.max_steps={size.diffusion_steps}", "train.learning_rate=2e-4")
