"""`medcf train-vae`: train the grey autoencoder of a from-scratch model, measure its latent scale, report.

The run folder gets vae/ (AutoencoderKL, diffusers format, with the measured scaling_factor), loss.csv/png,
reconstructions.png (held-out images above their reconstructions), manifest.json and index.html. Train the
U-Net on it with `--set model.vae=RUN/vae`.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from medcf.config import Config, save_config
from medcf.config_checks import check_paths
from medcf.data import collate_items
from medcf.figures import panel, save_figure
from medcf.models import load_vae, save_vae, scratch_vae, scratch_volume_vae
from medcf.training.data import HOLDOUT, TRAIN, data_fingerprint
from medcf.training.record import environment, write_json, write_losses
from medcf.training.run import make_accelerator, training_datasets
from medcf.training.setup import record_volume_data
from medcf.training.vae import latent_scaling_factor, reconstruction_metrics, set_scaling_factor, train_vae
from medcf.volumes.sampling import mid_axial_slices

PREVIEW_IMAGES = 8


def train_autoencoder(config: Config, run_dir: str | Path, *, progress: bool = True) -> Path:
    """Train (from scratch, or continue model.vae / model.pretrained's VAE); returns the saved `run_dir/vae`."""
    run_dir = Path(run_dir)
    vae_config, seed = config.vae, config.train.seed
    check_paths(config)
    accelerator = make_accelerator(config.train.mixed_precision)
    datasets = training_datasets(config, progress=progress and accelerator.is_main_process)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        vae = _initial_vae(config)
    loader = DataLoader(
        datasets[TRAIN],
        batch_size=vae_config.batch_size,
        shuffle=True,
        drop_last=True,
        collate_fn=collate_items,
        generator=torch.Generator().manual_seed(seed),
    )
    started = time.perf_counter()
    losses = train_vae(
        vae,
        loader,
        max_steps=vae_config.max_steps,
        learning_rate=vae_config.learning_rate,
        kl_weight=vae_config.kl_weight,
        seed=seed,
        accelerator=accelerator,
        progress=progress,
    )
    seconds = time.perf_counter() - started
    vae = accelerator.unwrap_model(vae)
    evaluation = DataLoader(
        datasets.get(HOLDOUT, datasets[TRAIN]), batch_size=vae_config.batch_size, collate_fn=collate_items
    )
    if accelerator.is_main_process:
        set_scaling_factor(vae, latent_scaling_factor(vae, loader))
        if config.model.spatial_dims == 3:  # the HU range and spacing that turn its volumes back into NIfTI
            record_volume_data(vae, datasets[TRAIN])
        metrics = reconstruction_metrics(vae, evaluation, max_batches=8)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
        save_vae(vae, run_dir / "vae")
        write_losses(run_dir, losses, title="medcf train-vae (L1 + β·KL)")
        _write_reconstructions(vae, evaluation, run_dir / "reconstructions.png")
        write_json(
            run_dir / "manifest.json",
            {
                "command": shlex.join(sys.argv),
                "seed": seed,
                "steps": len(losses),
                "seconds": round(seconds, 1),
                "scaling_factor": vae.config.scaling_factor,
                "reconstruction (held-out)": metrics,
                "data_fingerprint": data_fingerprint(datasets[TRAIN].cohort),
                "environment": environment(),
            },
        )
    accelerator.wait_for_everyone()
    return run_dir / "vae"


def _initial_vae(config: Config):
    if config.model.vae:
        return load_vae(config.model.vae)
    if config.model.pretrained:
        return load_vae(config.model.pretrained)
    vae_config = config.vae
    if config.model.spatial_dims == 3:  # MONAI's 3-D KL autoencoder behind diffusers' interface (models/volume.py)
        return scratch_volume_vae(
            tuple(config.data.patch) or (64, 64, 32),
            latent_channels=vae_config.latent_channels,
            block_out_channels=tuple(vae_config.block_out_channels),
        )
    return scratch_vae(
        config.data.resolution,
        latent_channels=vae_config.latent_channels,
        block_out_channels=tuple(vae_config.block_out_channels),
    )


@torch.no_grad()
def _write_reconstructions(vae, loader: DataLoader, path: Path) -> Path:
    """Held-out images (top row) over their posterior-mean reconstructions (bottom row)."""
    pixel_values = next(iter(loader))["pixel_values"][:PREVIEW_IMAGES].to(vae.device, vae.dtype)
    reconstruction = vae.decode(vae.encode(pixel_values).latent_dist.mode()).sample.clamp(-1, 1)
    if pixel_values.dim() == 5:  # volumes: their middle axial slices
        pixel_values, reconstruction = mid_axial_slices(pixel_values), mid_axial_slices(reconstruction)
    rows = [list(((images.float().mean(dim=1) + 1) / 2).cpu().numpy()) for images in (pixel_values, reconstruction)]
    titles = [[f"image {i + 1}" for i in range(len(rows[0]))], [f"recon. {i + 1}" for i in range(len(rows[0]))]]
    return save_figure(panel(rows, titles, tile=max(96, pixel_values.shape[-1])), path)
