"""Training throughput: medcf's optimizer step against a minimal reference loop written like diffusers'
`train_text_to_image.py` example, on the same model, data and batch size; and the data loader alone.

The reference loop: VAE-encode, noise, `scheduler.add_noise`, text-encode, U-Net, MSE to the noise, clip
the gradient norm to 1 (the example's default), AdamW step, and the EMA update (its --use_ema) — nothing
else. medcf's step adds prompt dropout, the learning-rate schedule and the accelerate wrapper, and by
default reads the frozen VAE encoder's posteriors and the frozen text encoder's embeddings from the cache
built once at start-up (training/encodings.py); it is timed with and without that cache, and the cache's
build time is charged to whole runs. All alternate in blocks so machine noise hits them alike; samples/s
ratio medcf / reference should be ≥ 1, and the loader alone ≥ 3× faster than a step (not the bottleneck).

    python benchmarks/training_throughput.py            # the shipped 64 px model fine-tuned on 64 px data
    python benchmarks/training_throughput.py --quick    # a tiny model, seconds: the CI smoke test
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel
from results_table import script_arguments, write_results

from medcf.config import load_config
from medcf.data.synthetic import synthesize
from medcf.models import Components, encode_prompts
from medcf.pretrained import pretrained_path
from medcf.training.data import TRAIN, batch_stream
from medcf.training.encodings import build_encoding_cache
from medcf.training.loop import optimizer_step
from medcf.training.run import setup_run
from medcf.training.setup import build_components

RATES = ("medcf", "medcf without cache", "reference", "loader alone")


def reference_step(components: Components, optimizer: torch.optim.Optimizer, ema: EMAModel, batch: dict) -> float:
    """One step as diffusers' train_text_to_image.py takes it (epsilon prediction, no extras)."""
    vae, unet, scheduler = components.vae, components.unet, components.scheduler
    with torch.no_grad():
        latents = vae.encode(batch["pixel_values"]).latent_dist.sample() * vae.config.scaling_factor
        embeds = encode_prompts(components, list(batch["prompt"]))
    noise = torch.randn_like(latents)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(latents),))
    noisy = scheduler.add_noise(latents, noise, timesteps)
    loss = F.mse_loss(unet(noisy, timesteps, encoder_hidden_states=embeds).sample.float(), noise.float())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    ema.step(unet.parameters())
    return loss.item()


def timed(step, count: int) -> float:
    """Seconds per call of `step` over `count` calls."""
    started = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - started) / count


def measure(overrides: list[str], folder: Path, *, steps: int, rounds: int) -> dict[str, object]:
    config = load_config(None, overrides)
    run = setup_run(config, folder / "run")
    plain = setup_run(load_config(None, [*overrides, "train.encoding_cache_mb=0"]), folder / "plain")
    started = time.perf_counter()
    build_encoding_cache(config, run.components, run.datasets[TRAIN], run.prior, progress=False)
    build_seconds = time.perf_counter() - started
    batch_size = config.train.batch_size
    model = config.model
    reference = build_components(pretrained=model.pretrained, tiny=model.tiny, resolution=config.data.resolution)
    reference.unet.train()
    optimizer = torch.optim.AdamW(reference.unet.parameters(), lr=config.train.learning_rate)
    ema = EMAModel(reference.unet.parameters(), decay=config.train.ema_decay)
    streams = {name: batch_stream(run.datasets[TRAIN], batch_size, seed=seed) for seed, name in enumerate(RATES)}
    calls = {
        "medcf": lambda: optimizer_step(run, streams["medcf"]),
        "medcf without cache": lambda: optimizer_step(plain, streams["medcf without cache"]),
        "reference": lambda: reference_step(reference, optimizer, ema, next(streams["reference"])),
        "loader alone": lambda: next(streams["loader alone"]),
    }
    for call in calls.values():  # warm-up, untimed
        call()
    seconds = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            seconds[name].append(timed(call, steps))
    per_step = {name: statistics.median(values) for name, values in seconds.items()}
    rate = {name: batch_size / value for name, value in per_step.items()}
    epoch_steps = len(run.datasets[TRAIN]) // batch_size
    return {
        "batch": batch_size, "resolution": config.data.resolution, "training images": len(run.datasets[TRAIN]),
        "timed steps": steps * rounds, "EMA decay (all)": config.train.ema_decay,
        "gradient clipping (all)": config.train.max_grad_norm, "cache note": run.encodings_note,
        "seconds to build the cache": build_seconds,
        **{f"samples/s {name}": rate[name] for name in RATES},
        "ratio medcf / reference": rate["medcf"] / rate["reference"],
        "ratio medcf without cache / reference": rate["medcf without cache"] / rate["reference"],
        **{f"ratio medcf / reference, whole {steps_}-step run incl. cache build": whole_run_ratio(
            per_step, build_seconds, steps_) for steps_ in (epoch_steps, 500)},
        "loader / medcf step speed": rate["loader alone"] / rate["medcf"],
    }  # fmt: skip


def whole_run_ratio(per_step: dict[str, float], build_seconds: float, steps: int) -> float:
    """Reference time / medcf time for a run of `steps` optimizer steps, medcf paying for its cache once."""
    return steps * per_step["reference"] / (build_seconds + steps * per_step["medcf"])


def main() -> None:
    args = script_arguments(__doc__, "tiny model, 32 px")
    size, subjects = (32, 16) if args.quick else (64, 200)
    with tempfile.TemporaryDirectory() as work:
        data = synthesize(
            "cxr", Path(work) / "data", n=subjects, size=size, seed=0, counterfactuals=False, progress=False
        )
        model = ["model.tiny=true"] if args.quick else [f"model.pretrained={pretrained_path()}"]
        overrides = [f"data.root={data}", f"data.resolution={size}", *model, "train.sample_every=0",
                     "train.checkpoint_every=0", f"train.batch_size={4 if args.quick else 16}"]  # fmt: skip
        result = measure(overrides, Path(work), steps=2 if args.quick else 5, rounds=1 if args.quick else 3)
    name = "training_throughput" + ("-quick" if args.quick else "")
    title = "Training throughput: medcf's optimizer step vs a diffusers train_text_to_image-style loop"
    method = "Same model, data, batch; steps alternate in blocks (medcf, without cache, reference, loader); medians."
    print(write_results(result, args.out, name, title, method).read_text())


if __name__ == "__main__":
    main()
