"""Training and fine-tuning latent diffusion on HF Accelerate: full, LoRA, textual inversion, DreamBooth, Custom
Diffusion."""

from medcf.training.drift_search import drift_search, write_drift_search
from medcf.training.loop import train
from medcf.training.loss import diffusion_loss, min_snr_weights
from medcf.training.vae_run import train_autoencoder

__all__ = ["diffusion_loss", "drift_search", "min_snr_weights", "train", "train_autoencoder", "write_drift_search"]
