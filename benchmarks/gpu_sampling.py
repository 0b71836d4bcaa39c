"""The inference rows of benchmarks/gpu.py: medcf's sampling loop vs diffusers' pipeline, the speed options the
field uses (channels-last, torch.compile), and healthy-counterpart attribution."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import torch
from gpu_models import Plan, allocated, alternate, count_flops, peak_memory, seconds, table_row
from sampling_overhead import PROMPTS, vanilla_pipeline

from medcf.attribution.difference import counterpart_attribution
from medcf.attribution.scoring import FindingCases
from medcf.editing import healthy_prompts
from medcf.generate import generate
from medcf.models import Components
from medcf.models.precision import DTYPES, inference_precision
from medcf.prompts import PromptTemplate

GUIDANCE = 3.0


def medcf_sampler(
    components: Components, batch: int, precision: str, plan: Plan, noise_dtype: torch.dtype
) -> tuple[Callable[[], torch.Tensor], list[str], torch.Tensor]:
    """medcf's generate of `batch` images under its inference precision (autocast; the VAE runs fp32 inside by
    design), with its prompts and its initial noise z_T: drawn on the CPU (the same on any device) and rounded to
    `noise_dtype`, so that loops in other dtypes start from the very same values."""
    unet = components.unet
    prompts, side = [PROMPTS[i % len(PROMPTS)] for i in range(batch)], unet.config.sample_size
    noise = torch.randn(batch, unet.config.in_channels, side, side, generator=torch.Generator().manual_seed(0))
    noise = noise.to(unet.device, noise_dtype)

    def sample() -> torch.Tensor:
        with inference_precision(precision, unet.device):
            return generate(
                components, prompts, latents=noise, num_inference_steps=plan.inference_steps, guidance_scale=GUIDANCE
            )

    return sample, prompts, noise


def sampling_flops(components: Components, precision: str, plan: Plan) -> dict[int, float]:
    """FLOP per image of medcf's sampling at each batch (text encoding, the guided U-Net passes, decoding): the
    work counted for every sampling row, whatever the dtype or option."""
    return {
        batch: count_flops(medcf_sampler(components, batch, precision, plan, torch.float32)[0]) / batch
        for batch in plan.batches
    }


def sampling_rows(
    components: Components, precision: str, flops: dict[int, float], plan: Plan, peak: float
) -> list[dict]:
    """medcf vs StableDiffusionPipeline on the same modules at each batch of `flops` (FLOP per image), the
    pipeline cast to the half dtype as diffusers users do (`pipe.to(dtype)`: U-Net, text encoder and VAE)."""
    dtype = DTYPES[precision]
    pipeline = vanilla_pipeline(copy.deepcopy(components)).to(dtype=dtype)  # a copy: medcf's modules stay fp32
    settings = {"num_inference_steps": plan.inference_steps, "guidance_scale": GUIDANCE, "output_type": "pt"}
    rows = []
    for batch in flops:
        medcf, prompts, noise = medcf_sampler(components, batch, precision, plan, dtype)
        calls = {"medcf": medcf, "diffusers": diffusers_sampler(pipeline, prompts, noise, settings)}
        median, images = alternate(calls, components.unet.device, repeats=plan.repeats)
        difference = (images["medcf"].float() - images["diffusers"].float()).abs()
        rows.append(table_row(
            f"sampling {plan.inference_steps} DDIM steps, guidance {GUIDANCE:g}", "diffusers StableDiffusionPipeline",
            precision, batch, median["medcf"] / batch, median["diffusers"] / batch, flops=flops[batch], peak=peak,
            note=f"mean abs image difference {float(difference.mean()):.3g}",
            **{"max abs image difference": float(difference.max())},
        ))  # fmt: skip
    return rows


def diffusers_sampler(pipeline, prompts: list[str], noise: torch.Tensor, settings: dict) -> Callable[[], torch.Tensor]:
    """The pipeline's images, mapped from its [0, 1] to medcf's [-1, 1]."""
    return lambda: pipeline(prompts, latents=noise, **settings).images * 2 - 1


def option_rows(
    components: Components, option: str, precision: str, flops: dict[int, float], plan: Plan, peak: float
) -> list[dict]:
    """medcf sampling with `option` ("channels-last" or "torch.compile") against the plain run, alternating, at
    each batch of `flops` (FLOP per image); torch.compile's first call at each batch compiles, timed apart."""
    unet, device = components.unet, components.unet.device
    if option == "channels-last":
        changed = copy.deepcopy(unet).to(memory_format=torch.channels_last)  # a copy: the plain run stays as is
    else:
        changed = torch.compile(unet)  # mode default
    faster = dataclasses.replace(components, unet=changed)
    rows = []
    for batch in flops:
        plain, tried = (medcf_sampler(c, batch, precision, plan, unet.dtype)[0] for c in (components, faster))
        first, _ = seconds(tried, device)  # torch.compile compiles for this batch here
        median, images = alternate({"option": tried, "plain": plain}, device, repeats=plan.repeats)
        compiled = f"first call {first:.1f} s: compilation ≈ {first - median['option']:.1f} s"
        rows.append(table_row(
            f"sampling + {option} U-Net", "medcf plain", precision, batch, median["option"] / batch,
            median["plain"] / batch, flops=flops[batch], peak=peak, note=compiled if option == "torch.compile" else "",
            **{"max abs image difference": float((images["option"] - images["plain"]).abs().max())},
        ))  # fmt: skip
    return rows


def attribution_row(components: Components, cases: FindingCases, precision: str, plan: Plan, peak: float) -> dict:
    """counterpart_attribution (its default inversion engine, strength 0.6) of `cases`: s / image, peak memory."""
    source, healthy = healthy_prompts(PromptTemplate("chest X-ray"), cases.rows)
    device, count = components.unet.device, len(cases.images)
    options = {"num_inference_steps": plan.inference_steps, "guidance_scale": GUIDANCE, "precision": precision}

    def attribute() -> torch.Tensor:
        with torch.no_grad():
            return counterpart_attribution(components, cases.images, source, healthy, **options).maps

    flops = count_flops(attribute) / count
    baseline = allocated(device)  # the model and the cases, held before the calls
    median, _ = alternate({"medcf": attribute}, device, repeats=plan.repeats)
    return table_row(
        f"healthy-counterpart attribution, {plan.inference_steps} steps", "—", precision, count,
        median["medcf"] / count, None, flops=flops, peak=peak, **{"medcf peak GiB": peak_memory(device, baseline)},
    )  # fmt: skip
