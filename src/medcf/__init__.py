"""medcf: counterfactual medical image synthesis with vision-language latent diffusion."""

__version__ = "0.1.0"
