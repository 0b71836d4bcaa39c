"""Setting up a training run: models, data, optimizer, EMA, encoding cache, resume, manifest (finish.py saves it)."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel

from medcf.config import Config, save_config
from medcf.config_checks import check_paths
from medcf.data import ImageTextDataset
from medcf.generate import drift_tensor
from medcf.models import Components, has_mask_condition
from medcf.models.text import check_training_prompts
from medcf.prompts import instance_prompt
from medcf.training.checkpoint import LoopState, resume
from medcf.training.data import HOLDOUT, TRAIN, data_fingerprint, load_cohorts, training_dataset, volume_dataset
from medcf.training.encodings import EncodingCache, build_encoding_cache
from medcf.training.memory import check_memory_options, enable_gradient_checkpointing, make_optimizer, memory_summary
from medcf.training.methods import prepare_method
from medcf.training.options import check_options, method_options
from medcf.training.prior import generate_class_images
from medcf.training.record import (
    environment,
    write_json,
    write_sample_grid,
)
from medcf.training.sampling import SampleSpec, sample_prompts, sample_sources
from medcf.training.setup import build_components, fit_to_volumes
from medcf.training.step import PriorImages, StepInputs

TRAINABLE = ("unet", "text_encoder", "vae")


@dataclasses.dataclass
class Run:
    """The objects of one training run, built by `setup_run` and used by the loop."""

    config: Config
    folder: Path
    accelerator: Accelerator
    components: Components  # unwrapped modules: sampling and saving
    forward: Components  # the same with accelerate-prepared (e.g. DDP) trainable modules: the loss
    prepared: list[torch.nn.Module]
    parameters: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: EMAModel | None
    state: LoopState
    inputs: StepInputs
    prior: PriorImages | None
    samples: SampleSpec
    datasets: dict
    memory: dict  # attention kernel, optimizer implementation, checkpointed modules: stated in the manifest
    encodings: EncodingCache | None = None  # frozen encoders' outputs (training/encodings.py)
    encodings_note: str = ""

    @property
    def resumable(self) -> dict[str, object]:
        """What checkpoints hold besides accelerate's state, saved without pickle (training/resumable.py)."""
        return {"lr_scheduler": self.lr_scheduler, "loop": self.state, "ema": self.ema}


def setup_run(config: Config, folder: Path, *, progress: bool = True) -> Run:
    """Build everything from the config; restore the newest checkpoint of `folder` when there is one. `progress`
    shows the bars of the work before the first step (checking files, caching encodings)."""
    train_config, data_config = config.train, config.data
    check_memory_options(use_8bit_adam=train_config.use_8bit_adam)
    check_paths(config)
    if train_config.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ValueError("train.mixed_precision=fp16 needs a GPU; use bf16 or no on CPU")
    accelerator = make_accelerator(train_config.mixed_precision, train_config.gradient_accumulation_steps)
    check_options(config, accelerator, folder)
    components = build_components(
        **dataclasses.asdict(config.model),
        resolution=data_config.resolution,
        prediction_type=train_config.prediction_type,
        zero_terminal_snr=train_config.zero_terminal_snr,
        seed=train_config.seed,
    )
    for name in TRAINABLE:
        getattr(components, name).to(accelerator.device)
    datasets = training_datasets(config, progress=progress and accelerator.is_main_process)
    if config.model.spatial_dims == 3:
        fit_to_volumes(components, datasets[TRAIN])
    parameters = prepare_method(components, train_config.method, **method_options(config))
    _check_prompts(config, components, datasets[TRAIN])  # after prepare_method: the placeholder is a token now
    checkpointed = enable_gradient_checkpointing(components) if train_config.gradient_checkpointing else []
    prior = _prior(components, config) if train_config.uses_prior else None
    if prior is not None and accelerator.is_main_process:  # the class images, for the user to inspect
        write_sample_grid(prior.images, folder / "class_images.png")
    weight_decay = 0.0 if train_config.method == "textual-inversion" else train_config.adam_weight_decay
    optimizer = make_optimizer(
        parameters,
        learning_rate=train_config.learning_rate,
        weight_decay=weight_decay,
        use_8bit_adam=train_config.use_8bit_adam,
    )
    memory = memory_summary(components.unet, optimizer, checkpointed)  # before accelerate wraps the optimizer
    lr_scheduler = get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=train_config.lr_warmup_steps)
    names = [name for name in TRAINABLE if any(p.requires_grad for p in getattr(components, name).parameters())]
    *modules, optimizer = accelerator.prepare(*[getattr(components, name) for name in names], optimizer)
    ema = EMAModel(parameters, decay=train_config.ema_decay) if train_config.ema_decay > 0 else None
    state = LoopState(train_config.seed, accelerator.process_index)
    run = Run(
        config=config,
        folder=folder,
        accelerator=accelerator,
        components=components,
        forward=dataclasses.replace(components, **dict(zip(names, modules, strict=True))),
        prepared=modules,
        parameters=parameters,
        optimizer=optimizer,
        lr_scheduler=lr_scheduler,
        ema=ema,
        state=state,
        inputs=_step_inputs(config, components, accelerator.device),
        prior=prior,
        samples=_sample_spec(config, datasets, has_mask_condition(components)),
        datasets=datasets,
        memory=memory,
    )
    if config.model.spatial_dims == 3:  # patches differ every epoch: no posterior to cache
        run.encodings_note = "encoding cache off (3-D volumes)"
    else:
        run.encodings, run.encodings_note = build_encoding_cache(
            config, components, datasets[TRAIN], prior, progress=progress and accelerator.is_main_process
        )
    _start(run)
    return run


def make_accelerator(mixed_precision: str, gradient_accumulation_steps: int = 1) -> Accelerator:
    """The Accelerator of this process; several processes without CUDA join over gloo (accelerate's MULTI_CPU).

    `accelerate launch --multi_gpu` on a machine without GPUs starts the processes, but Accelerator() would
    leave each one alone (DistributedType.NO) unless told it runs on the CPU: they would train apart and
    overwrite each other's files.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    accelerator = Accelerator(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=gradient_accumulation_steps,
        cpu=launched > 1 and not torch.cuda.is_available(),
    )
    if accelerator.num_processes != launched:
        raise RuntimeError(f"launched {launched} processes but accelerate joined {accelerator.num_processes}")
    return accelerator


def training_datasets(config: Config, *, progress: bool = True) -> dict:
    """{"train": dataset[, "holdout": dataset]} of the config's data, split by patient (volumes when 3-D)."""
    data_config, volumes = config.data, config.model.spatial_dims == 3
    cohorts = load_cohorts(
        data_config.root,
        adapter=data_config.adapter,
        csv=data_config.csv,
        modality=data_config.modality,
        row_filter=data_config.filter,
        holdout_fraction=data_config.holdout_fraction,
        seed=config.train.seed,
        bad_files="unchecked" if volumes else data_config.bad_files,  # verify.py reads 2-D slices; volumes below
        pairs=data_config.pairs,
        progress=progress,
    )
    options = {
        "prompt_style": data_config.prompt_style,
        "patient_info": data_config.patient_info,
        "seed": config.train.seed,
    }
    if volumes:
        volume_options = {"patch": data_config.patch, "bad_files": data_config.bad_files,
                          "masks": config.model.mask_conditioning}  # fmt: skip
        return {name: volume_dataset(cohort, **volume_options, **options) for name, cohort in cohorts.items()}
    return {
        name: training_dataset(cohort, resolution=data_config.resolution, **options)
        for name, cohort in cohorts.items()
    }


def _check_prompts(config: Config, components: Components, dataset: ImageTextDataset) -> None:
    """Warn about training prompts the text encoder cuts; refuse a cut that loses the placeholder."""
    train_config = config.train
    template = train_config.instance_template
    prompts = [instance_prompt(dataset.prompt(index), template) for index in range(len(dataset))]
    keep = train_config.placeholder_token if train_config.learns_token else ""
    check_training_prompts(components.tokenizer, prompts, keep=keep)


def _prior(components: Components, config: Config) -> PriorImages:
    train_config = config.train
    if not train_config.class_prompt:
        raise ValueError("train.method=dreambooth needs train.class_prompt, e.g. 'a chest X-ray'")
    images = generate_class_images(
        components,
        train_config.class_prompt,
        train_config.num_class_images,
        seed=train_config.seed,
        num_inference_steps=config.sample.num_inference_steps,
        guidance_scale=config.sample.guidance_scale,
    )
    return PriorImages(images.cpu(), train_config.class_prompt, train_config.prior_loss_weight)


def _step_inputs(config: Config, components: Components, device: torch.device) -> StepInputs:
    train_config = config.train
    drift = train_config.latent_drift
    channels = components.unet.config.out_channels
    spatial = (1,) * config.model.spatial_dims  # δ broadcast over the latent axes (h, w) or (x, y, z)
    return StepInputs(
        device=device,
        latent_drift=None if drift == 0 else drift_tensor(drift, channels).view(1, channels, *spatial).to(device),
        drift_target=train_config.drift_target,
        snr_gamma=train_config.snr_gamma,
        prompt_dropout=config.data.prompt_dropout,
        instance_prompt=train_config.instance_template,
        mask_condition=has_mask_condition(components),
        train_vae_decoder=train_config.train_vae_decoder,
        edit_weight=train_config.edit_weight,
        edit_weight_norm=train_config.edit_weight_norm,
    )


def _sample_spec(config: Config, datasets: dict, with_masks: bool) -> SampleSpec:
    sample = config.sample
    dataset = datasets.get(HOLDOUT, datasets[TRAIN])
    prompts, masks = sample_prompts(dataset, sample.num_images, with_masks=with_masks)
    if sample.prompts:
        prompts = [sample.prompts[i % len(sample.prompts)] for i in range(len(prompts))]
    if config.train.instance_template and not sample.prompts:
        prompts = [instance_prompt(prompt, config.train.instance_template) for prompt in prompts]
    return SampleSpec(
        prompts=prompts,
        masks=masks,
        num_inference_steps=sample.num_inference_steps,
        guidance_scale=sample.guidance_scale,
        scheduler=sample.scheduler,
        latent_drift=config.train.latent_drift if sample.latent_drift is None else sample.latent_drift,
        seed=config.train.seed,
        sources=sample_sources(dataset, sample.num_images),
        image_guidance_scale=sample.image_guidance_scale,
    )


def _start(run: Run) -> None:
    start_run(run, {"encoding_cache": run.encodings_note, "memory": run.memory})


def start_run(run: Run, entries: dict[str, object]) -> None:
    """Resume from the newest complete checkpoint; the main process writes config.yaml and the manifest (`entries`,
    the environment, and this session). `run`: this module's Run or the GAN's (training/gan_run.py)."""
    accelerator, folder = run.accelerator, run.folder
    checkpoint = resume(accelerator, folder / "checkpoints", run.resumable)
    if accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
        save_config(run.config, folder / "config.yaml")
        manifest = read_manifest(folder)
        manifest.setdefault("data_fingerprint", data_fingerprint(run.datasets[TRAIN].cohort))
        manifest.setdefault("seed", run.config.train.seed)
        manifest |= entries
        manifest["environment"] = environment()
        manifest["num_processes"] = accelerator.num_processes
        manifest.setdefault("sessions", []).append(
            {
                "command": shlex.join(sys.argv),
                "start_step": run.state.step,
                "resumed_from": checkpoint.name if checkpoint else None,
            }
        )
        write_json(folder / "manifest.json", manifest)
    accelerator.wait_for_everyone()


def read_manifest(folder: Path) -> dict:
    """The run folder's manifest.json, or {} before the first session writes it."""
    path = folder / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}
