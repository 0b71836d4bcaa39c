"""Sampling overhead: medcf's generate loop against diffusers' StableDiffusionPipeline on identical components.

Both sample the same prompts from the same initial noise with the same DDIM scheduler, steps and guidance;
the images must agree (max |difference| is reported) and the time ratio medcf / diffusers should be ≤ 1.
Runs alternate (diffusers, medcf, diffusers, ...) so that machine noise hits both alike; medians are compared.

    python benchmarks/sampling_overhead.py             # the shipped 64 px model, 8 prompts, 25 steps
    python benchmarks/sampling_overhead.py --quick     # a tiny model, seconds: the CI smoke test
"""

from __future__ import annotations

import statistics
import time

import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline
from results_table import script_arguments, write_results

from medcf.generate import generate
from medcf.models import Components, load_components, tiny_components, vae_scale_factor
from medcf.pretrained import pretrained_path

PROMPTS = ["A chest X-ray of a 63 year old male with a nodule.", "A normal chest X-ray of a 40 year old female."]


def vanilla_pipeline(components: Components) -> StableDiffusionPipeline:
    """diffusers' own pipeline built from the very same modules (no copy, no reload)."""
    pipeline = StableDiffusionPipeline(
        vae=components.vae, text_encoder=components.text_encoder, tokenizer=components.tokenizer,
        unet=components.unet, scheduler=DDIMScheduler.from_config(components.scheduler.config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def measure(components: Components, *, batch: int, steps: int, repeats: int) -> dict[str, object]:
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    side = components.unet.config.sample_size
    shape = (batch, components.unet.config.in_channels, side, side)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    pipeline, settings = vanilla_pipeline(components), {"num_inference_steps": steps, "guidance_scale": 3.0}
    runs = {
        "diffusers": lambda: pipeline(prompts, latents=noise, output_type="pt", **settings).images * 2 - 1,
        "medcf": lambda: generate(components, prompts, latents=noise, scheduler="ddim", **settings),
    }
    seconds, images = {name: [] for name in runs}, {}
    with torch.inference_mode():
        for _ in range(repeats + 1):  # the first round warms both up and is not timed
            for name, run in runs.items():
                started = time.perf_counter()
                images[name] = run()
                seconds[name].append(time.perf_counter() - started)
    median = {name: statistics.median(values[1:] or values) for name, values in seconds.items()}
    return {
        "batch": batch, "steps": steps, "guidance": 3.0, "resolution": side * vae_scale_factor(components),
        "timed repeats": repeats,
        "seconds diffusers": median["diffusers"], "seconds medcf": median["medcf"],
        "ratio medcf / diffusers": median["medcf"] / median["diffusers"],
        "max abs image difference": float((images["medcf"] - images["diffusers"]).abs().max()),
    }  # fmt: skip


def main() -> None:
    args = script_arguments(__doc__, "tiny model, 2 steps")
    if args.quick:
        components, options = tiny_components(), {"batch": 2, "steps": 2, "repeats": 1}
    else:
        components, options = load_components(pretrained_path()), {"batch": 8, "steps": 25, "repeats": 5}
    result = measure(components, **options)
    name = "sampling_overhead" + ("-quick" if args.quick else "")
    method = "Same modules, prompts, initial noise, DDIM scheduler, steps and guidance; median of alternating runs."
    title = "Sampling overhead: medcf generate vs diffusers StableDiffusionPipeline"
    print(write_results(result, args.out, name, title, method).read_text())


if __name__ == "__main__":
    main()
