"""Setting up a model.backend=gan run: the GAN, the same data as diffusion training, optimizers, EMA, resume."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel

from medcf.config import Config
from medcf.config_checks import check_paths
from medcf.data.volume import VolumeTextDataset
from medcf.models.gan_components import (
    DISCRIMINATOR_LAYERS,
    TINY_BLOCK_OUT_CHANNELS,
    TINY_DISCRIMINATOR_LAYERS,
    GanComponents,
    scratch_gan,
    tiny_gan,
)
from medcf.training.data import HOLDOUT, TRAIN
from medcf.training.gan import GanModules
from medcf.training.options import check_run_folder
from medcf.training.run import make_accelerator, start_run, training_datasets
from medcf.training.sampling import sample_prompts

# Adam with β₁ = 0, β₂ = 0.99 for both players (StyleGAN2, Karras et al. 2020): momentum lags the moving
# opponent; no weight decay.
ADAM_BETAS = (0.0, 0.99)


class GanLoopState:
    """What the loop needs besides weights to continue exactly: step, noise generator, both loss histories."""

    def __init__(self, seed: int, process_index: int) -> None:
        self.step = 0
        self.generator = torch.Generator().manual_seed(seed * 1_000 + process_index)  # z of every step
        self.generator_losses: list[float] = []
        self.discriminator_losses: list[float] = []

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "generator": self.generator.get_state(),
            "generator_losses": list(self.generator_losses),
            "discriminator_losses": list(self.discriminator_losses),
        }

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.generator.set_state(state["generator"])
        self.generator_losses = [float(loss) for loss in state["generator_losses"]]
        self.discriminator_losses = [float(loss) for loss in state["discriminator_losses"]]


@dataclasses.dataclass
class GanRun:
    """The objects of one GAN training run, built by `setup_gan_run` and used by the loop."""

    config: Config
    folder: Path
    accelerator: Accelerator
    modules: GanModules
    state: GanLoopState
    datasets: dict
    sample_prompts: list[str]
    sample_masks: torch.Tensor | None

    @property
    def gan(self) -> GanComponents:
        return self.modules.gan

    @property
    def resumable(self) -> dict[str, object]:
        """What checkpoints hold besides accelerate's state, saved without pickle (training/resumable.py)."""
        return {"loop": self.state, "ema": self.modules.ema}


def setup_gan_run(config: Config, folder: Path, *, progress: bool = True) -> GanRun:
    """Build the GAN and its data from the config; restore the newest checkpoint of `folder` when there is one."""
    train_config = config.train
    check_paths(config)
    check_gan_options(config, folder)
    accelerator = make_accelerator(train_config.mixed_precision)
    # volumes (data/volume.py) when model.spatial_dims=3
    datasets = training_datasets(config, progress=progress and accelerator.is_main_process)
    gan = build_gan_components(config, datasets[TRAIN])
    if gan.mask_conditioning and not datasets[TRAIN].cohort.has_masks:
        raise ValueError(f"model.mask_conditioning: {config.data.root} has no mask_path column; turn it off")
    for module in (gan.generator, gan.discriminator, gan.text_encoder):
        module.to(accelerator.device)
    gan.generator.train()
    gan.discriminator.train()
    optimizers = [
        torch.optim.Adam(net.parameters(), lr=train_config.learning_rate, betas=ADAM_BETAS)
        for net in (gan.generator, gan.discriminator)
    ]
    generator, discriminator, *optimizers = accelerator.prepare(gan.generator, gan.discriminator, *optimizers)
    ema = EMAModel(gan.generator.parameters(), decay=train_config.ema_decay) if train_config.ema_decay > 0 else None
    modules = GanModules(
        gan, generator, discriminator, *optimizers, ema, config.gan.r1_gamma, train_config.max_grad_norm
    )
    prompts, masks = sample_prompts(
        datasets.get(HOLDOUT, datasets[TRAIN]), config.sample.num_images, with_masks=gan.mask_conditioning
    )
    if config.sample.prompts:
        prompts = [config.sample.prompts[i % len(config.sample.prompts)] for i in range(len(prompts))]
    run = GanRun(
        config,
        folder,
        accelerator,
        modules,
        GanLoopState(train_config.seed, accelerator.process_index),
        datasets,
        prompts,
        masks,
    )
    _start(run)
    return run


def build_gan_components(config: Config, dataset: VolumeTextDataset | None = None) -> GanComponents:
    """The seeded, untrained GAN a run starts from (model.tiny: toy size, z of 16); 3-D: at the size of `dataset`'s
    volumes or patches, with their value range and spacing in the generator's config (as the 3-D VAE records them)."""
    options = {"spatial_dims": config.model.spatial_dims, "mask_conditioning": config.model.mask_conditioning}
    if config.model.spatial_dims == 3:
        if dataset is None:
            raise ValueError("model.spatial_dims=3: pass the training VolumeTextDataset; its volumes set the size")
        blocks = TINY_BLOCK_OUT_CHANNELS if config.model.tiny else config.gan.block_out_channels
        options["sample_size"] = _volume_size(dataset.item_shape, blocks, tiny=config.model.tiny)
    else:
        options["sample_size"] = config.data.resolution
    if config.model.tiny:
        gan = tiny_gan(seed=config.train.seed, **options)
    else:
        text_encoder = config.model.text_encoder or None
        gan_config = config.gan
        gan = scratch_gan(
            text_encoder_path=text_encoder,
            latent_dim=gan_config.latent_dim,
            block_out_channels=tuple(gan_config.block_out_channels),
            discriminator_channels=gan_config.discriminator_channels,
            seed=config.train.seed,
            **options,
        )
    if config.model.spatial_dims == 3:  # the units that turn its volumes back into NIfTI (gan_volume_units)
        gan.generator.register_to_config(value_range=list(dataset.value_range), spacing_mm=list(dataset.spacing_mm))
    return gan


def _volume_size(size: tuple[int, int, int], blocks: Sequence[int], *, tiny: bool) -> tuple[int, int, int]:
    """`size` (X, Y, Z) after checking it fits both networks: each side a multiple of the generator's ×2 upsampling,
    and at least 2^(layers + 1), below which the patch discriminator's stride-2 layers and 4-wide kernels run out."""
    layers = TINY_DISCRIMINATOR_LAYERS if tiny else DISCRIMINATOR_LAYERS
    multiple, smallest = 2 ** (len(blocks) - 1), 2 ** (layers + 1)
    if any(side % multiple for side in size) or min(size) < smallest:
        raise ValueError(
            f"volumes or patches of {tuple(size)} voxels: each side must be a multiple of {multiple} (the GAN "
            f"generator's upsampling) and at least {smallest} (its discriminator's); set data.patch, e.g. [64, 64, 32]"
        )
    return tuple(size)


def check_gan_options(config: Config, folder: Path) -> None:
    """Refuse diffusion-only settings with model.backend=gan, and a folder holding another run."""
    model, train_config = config.model, config.train
    if model.pretrained or model.vae:
        raise ValueError("model.backend=gan trains from scratch: model.pretrained / model.vae are diffusion folders")
    if train_config.method != "full" or config.data.pairs:
        raise ValueError(
            f"train.method={train_config.method}, data.pairs={config.data.pairs!r}: model.backend=gan trains the "
            "generator and discriminator in full on single images; set train.method=full and data.pairs=''"
        )
    if train_config.gradient_accumulation_steps != 1:
        raise ValueError("model.backend=gan: train.gradient_accumulation_steps must be 1; raise train.batch_size")
    check_run_folder(config, folder)


def _start(run: GanRun) -> None:
    start_run(run, {"backend": "gan"})
