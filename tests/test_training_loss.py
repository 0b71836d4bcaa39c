"""The denoising loss: forward process with Latent Drift, ε/v targets, Min-SNR-γ weights."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from medcf.generate import drift_tensor
from medcf.training.loss import diffusion_loss, min_snr_weights


class Recorder(torch.nn.Module):
    """A stand-in U-Net that records its input and predicts a fixed tensor, to check the loss arithmetic."""

    def __init__(self, prediction: torch.Tensor) -> None:
        super().__init__()
        self.prediction = prediction
        self.inputs: list[torch.Tensor] = []

    def forward(self, sample, timestep, encoder_hidden_states):  # noqa: ARG002 - the U-Net signature
        self.inputs.append(sample)
        return type("Output", (), {"sample": self.prediction})()


def _scheduler(prediction_type: str = "epsilon") -> DDPMScheduler:
    return DDPMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type=prediction_type
    )


@pytest.fixture
def tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "latents": torch.randn(3, 4, 8, 8, generator=generator),
        "noise": torch.randn(3, 4, 8, 8, generator=generator),
        "timesteps": torch.tensor([10, 500, 990]),
        "embeds": torch.randn(3, 77, 16, generator=generator),
    }


def _loss(unet, scheduler, tensors, **options) -> torch.Tensor:
    return diffusion_loss(
        unet,
        scheduler,
        tensors["latents"],
        tensors["embeds"],
        noise=tensors["noise"],
        timesteps=tensors["timesteps"],
        **options,
    )


def test_noisy_input_and_epsilon_target(tensors) -> None:
    scheduler, unet = _scheduler(), Recorder(torch.zeros(3, 4, 8, 8))
    loss = _loss(unet, scheduler, tensors)
    alpha = scheduler.alphas_cumprod[tensors["timesteps"]].view(-1, 1, 1, 1)
    expected_input = alpha.sqrt() * tensors["latents"] + (1 - alpha).sqrt() * tensors["noise"]
    torch.testing.assert_close(unet.inputs[0], expected_input)
    torch.testing.assert_close(loss, tensors["noise"].pow(2).mean(dim=(1, 2, 3)))  # zero prediction vs ε


@pytest.mark.parametrize("drift_target", ["shifted", "plain"])
def test_latent_drift_shifts_the_forward_noise(tensors, drift_target: str) -> None:
    scheduler, unet = _scheduler(), Recorder(torch.zeros(3, 4, 8, 8))
    delta = drift_tensor([0.1, -0.2, 0.0, 0.05], 4)
    loss = _loss(unet, scheduler, tensors, latent_drift=delta, drift_target=drift_target)
    alpha = scheduler.alphas_cumprod[tensors["timesteps"]].view(-1, 1, 1, 1)
    drifted = tensors["noise"] + delta  # ε_δ = ε + δ·1
    torch.testing.assert_close(unet.inputs[0], alpha.sqrt() * tensors["latents"] + (1 - alpha).sqrt() * drifted)
    target = drifted if drift_target == "shifted" else tensors["noise"]
    torch.testing.assert_close(loss, target.pow(2).mean(dim=(1, 2, 3)))


def test_v_prediction_target(tensors) -> None:
    scheduler, unet = _scheduler("v_prediction"), Recorder(torch.zeros(3, 4, 8, 8))
    loss = _loss(unet, scheduler, tensors)
    alpha = scheduler.alphas_cumprod[tensors["timesteps"]].view(-1, 1, 1, 1)
    velocity = alpha.sqrt() * tensors["noise"] - (1 - alpha).sqrt() * tensors["latents"]  # Salimans & Ho 2022
    torch.testing.assert_close(loss, velocity.pow(2).mean(dim=(1, 2, 3)))


def test_condition_is_concatenated_after_the_noisy_latents(tensors) -> None:
    unet = Recorder(torch.zeros(3, 4, 8, 8))
    condition = torch.ones(3, 1, 8, 8)
    _loss(unet, _scheduler(), tensors, condition=condition)
    assert unet.inputs[0].shape == (3, 5, 8, 8)
    torch.testing.assert_close(unet.inputs[0][:, 4:], condition)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_min_snr_weights(prediction_type: str) -> None:
    scheduler = _scheduler(prediction_type)
    timesteps = torch.tensor([0, 100, 400, 999])
    alpha = scheduler.alphas_cumprod[timesteps]
    snr = alpha / (1 - alpha)
    weights = min_snr_weights(scheduler, timesteps, 5.0)
    expected = torch.minimum(snr, torch.tensor(5.0)) / (snr + 1 if prediction_type == "v_prediction" else snr)
    torch.testing.assert_close(weights, expected)
    assert weights.max() <= 1.0  # the weights only ever shrink the easy, low-noise steps
    if prediction_type == "epsilon":
        assert weights[-1] == 1.0  # SNR < γ at t = 999: weight 1


def test_min_snr_scales_the_loss(tensors) -> None:
    scheduler, unet = _scheduler(), Recorder(torch.zeros(3, 4, 8, 8))
    plain = _loss(unet, scheduler, tensors)
    weighted = _loss(unet, scheduler, tensors, snr_gamma=5.0)
    torch.testing.assert_close(weighted, plain * min_snr_weights(scheduler, tensors["timesteps"], 5.0))


def test_pixel_weights_give_a_weighted_mean_per_sample(tensors) -> None:
    scheduler, unet = _scheduler(), Recorder(torch.zeros(3, 4, 8, 8))
    equal = _loss(unet, scheduler, tensors, weights=torch.full((3, 1, 8, 8), 7.0))
    torch.testing.assert_close(equal, _loss(unet, scheduler, tensors))  # equal weights: the plain mean
    weights = torch.ones(3, 1, 8, 8)
    weights[:, :, 2, 5] = 31.0  # one latent pixel of 64 weighs about half as much as the other 63 together
    squared = tensors["noise"].pow(2)
    expected = (squared.sum(dim=(1, 2, 3)) + 30 * squared[:, :, 2, 5].sum(dim=1)) / (4 * (63 + 31))
    torch.testing.assert_close(_loss(unet, scheduler, tensors, weights=weights), expected)


def test_bad_options_are_refused(tensors) -> None:
    unet = Recorder(torch.zeros(3, 4, 8, 8))
    with pytest.raises(ValueError, match="drift_target='both'"):
        _loss(unet, _scheduler(), tensors, drift_target="both")
    with pytest.raises(ValueError, match="prediction_type='sample'"):
        _loss(unet, _scheduler("sample"), tensors)
