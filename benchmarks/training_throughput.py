"""Training throughput: medcf's optimizer step against a minimal reference loop written like diffusers'
`train_text_to_image.py` example, on the same model, data and batch size; and the data loader alone.

The reference loop: VAE-encode, noise, `scheduler.add_noise`, text-encode, U-Net, MSE to the noise, clip
the gradient norm to 1 (the example's default), AdamW step, and the EMA update (its --use_ema) — nothing
else. medcf's step adds prompt dropout, the learning-rate schedule and the accelerate wrapper. The
two alternate in blocks so machine noise hits both alike; samples/s ratio medcf / reference should be ≥ 1,
and the loader alone should be ≥ 3× faster than a step (it is not the bottleneck).

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
from medcf.training.loop import optimizer_step
from medcf.training.run import setup_run
from medcf.training.setup import build_components


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
    batch_size = config.train.batch_size
    stream = batch_stream(run.datasets[TRAIN], batch_size, seed=0)
    model = config.model
    reference = build_components(pretrained=model.pretrained, tiny=model.tiny, resolution=config.data.resolution)
    reference.unet.train()
    optimizer = torch.optim.AdamW(reference.unet.parameters(), lr=config.train.learning_rate)
    ema = EMAModel(reference.unet.parameters(), decay=config.train.ema_decay)
    loader = batch_stream(run.datasets[TRAIN], batch_size, seed=1)
    calls = {
        "medcf": lambda: optimizer_step(run, stream),
        "reference": lambda: reference_step(reference, optimizer, ema, next(loader)),
        "loader": lambda: next(loader),
    }
    for call in calls.values():  # warm-up, untimed
        call()
    seconds = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            seconds[name].append(timed(call, steps))
    per_step = {name: statistics.median(values) for name, values in seconds.items()}
    rate = {name: batch_size / value for name, value in per_step.items()}
    return {
        "batch": batch_size, "resolution": config.data.resolution, "timed steps": steps * rounds,
        "EMA decay (both)": config.train.ema_decay, "gradient clipping (both)": config.train.max_grad_norm,
        "samples/s medcf": rate["medcf"], "samples/s reference": rate["reference"],
        "samples/s loader alone": rate["loader"],
        "ratio medcf / reference": rate["medcf"] / rate["reference"],
        "loader / medcf step speed": rate["loader"] / rate["medcf"],
    }  # fmt: skip


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
    method = "Same model, data and batch; blocks of steps alternate (medcf, reference, loader alone); medians."
    print(write_results(result, args.out, name, title, method).read_text())


if __name__ == "__main__":
    main()
