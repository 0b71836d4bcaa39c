"""Run configuration: typed dataclasses with defaults, mirrored by YAML, overridden by `--set a.b=value`.

Unknown keys are errors (nanoGPT's "Unknown config key"). `configs/example.yaml` documents every field.
Only `training`, `cli` and `app` read a Config; every other function takes plain values.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medcf.config_checks import check_ranges, check_spatial_dims


@dataclass
class DataConfig:
    root: str = ""  # dataset folder: metadata.csv + images (what `medcf synth` writes), or a release as downloaded
    adapter: str = "folder"  # its layout: folder, or a release's (chexpert, mimic-cxr, nih, ...: README, Datasets)
    csv: str = ""  # the table under root; "" = the layout's own (folder: metadata.csv; nih: Data_Entry_2017*.csv)
    # images that do not decode, found by reading every file before training: error (refuse, naming them) |
    # skip (drop their rows, saying so) | unchecked (no up-front read: a bad file stops the run where it is met)
    bad_files: str = "error"
    modality: str = "chest X-ray"  # rendered into prompts ("chest X-ray", "brain MRI", ...)
    resolution: int = 64  # square side in pixels after centre crop + resize
    holdout_fraction: float = 0.1  # patients held out of training (split_by_patient), used for evaluation
    # keep matching rows (instance images): `field OP value` with OP in == != < <= > >=, `field [not] in [v, ...]`,
    # `field is [not] missing`, joined by and / or / not / ( ); never evaluated as Python (data/filter_syntax.py)
    filter: str = ""  # e.g. 'pleural_effusion == 1 and smoking in ["current", "former"]'
    prompt_style: str = "diverse"  # table | simple | diverse (medcf.prompts.STYLES)
    patient_info: bool = True  # put age / sex / smoking into prompts
    prompt_dropout: float = 0.1  # probability of the null prompt, trains classifier-free guidance (Ho & Salimans)
    # image pairs for train.method=instruct-pix2pix (medcf.data.pairs): counterfactuals (a `medcf synth` folder's
    # true counterfactuals, both ways, and each subject unchanged) | longitudinal (repeat visits of data.adapter's
    # cohort) | a CSV under root with source_path, target_path, instruction; "" = single images
    pairs: str = ""
    num_workers: int = 0  # DataLoader worker processes
    patch: list[int] = field(default_factory=list)  # model.spatial_dims=3: random [X, Y, Z] crops; [] = whole volumes


@dataclass
class ModelConfig:
    pretrained: str = ""  # local Stable-Diffusion-format folder to fine-tune; "" builds from scratch
    vae: str = ""  # folder of a trained VAE (`medcf train-vae` output) replacing the model's VAE
    text_encoder: str = ""  # local transformers text encoder folder for a scratch model; "" = shipped MiniLM
    tiny: bool = False  # toy-size components (smoke tests); ignored when pretrained is set
    mask_conditioning: bool = False  # concatenate the lesion/anatomy mask to the noisy latents (DGM-VLC hybrid)
    text_modulation: bool = False  # text-predicted γ·h+β on U-Net features (DGM-VLC text-visual embedding)
    spatial_dims: int = 2  # 2: images (diffusers U-Net) | 3: volumes (MONAI 3-D VAE and U-Net, models/volume.py)
    backend: str = "diffusion"  # diffusion (latent diffusion U-Net) | gan (text-FiLM generator; always modulated)


@dataclass
class TrainConfig:
    method: str = "full"  # full | lora | textual-inversion | dreambooth | custom-diffusion | instruct-pix2pix
    max_steps: int = 1000  # optimizer steps
    batch_size: int = 16  # images per process per micro-batch
    gradient_accumulation_steps: int = 1  # micro-batches per optimizer step
    learning_rate: float = 1e-4  # AdamW; LoRA and textual inversion usually want 1e-4–5e-3
    lr_warmup_steps: int = 0  # linear warm-up, then constant
    adam_weight_decay: float = 1e-2  # AdamW weight decay
    max_grad_norm: float = 1.0  # gradient clipping
    mixed_precision: str = "no"  # no | fp16 | bf16 (accelerate; fp16 needs a GPU)
    ema_decay: float = 0.999  # exponential moving average of trained weights; 0 turns EMA off
    prediction_type: str = "epsilon"  # epsilon | v_prediction (Salimans & Ho 2022)
    snr_gamma: float = 0.0  # Min-SNR-γ loss weighting (Hang et al. 2023, arXiv:2303.09556), 5.0 typical; 0 = off
    # Zero terminal SNR (Lin et al., WACV 2024): betas rescaled so that t = T is pure noise, sampled from t = T
    # ("trailing" steps); needs v_prediction. Without it z_T keeps √ᾱ_T ≈ 0.07 of the image, so a model can read an
    # image-wide brightness off the noise instead of the prompt. Min-SNR-γ gives t ≈ T no weight.
    zero_terminal_snr: bool = False
    latent_drift: float | list[float] = 0.0  # δ of Latent Drifting (scalar or one per latent channel)
    drift_target: str = "shifted"  # shifted: regress ε + δ | plain: regress ε (why: training/loss.py)
    train_text_encoder: bool = False  # full/dreambooth: also train the text encoder (RoentGen's best)
    train_vae_decoder: bool = False  # full: also train the VAE decoder (Chambon et al.'s component study)
    # instruct-pix2pix: weight 1 + λ·a on the latent pixels each pair's edit moves (a: 0–1, training/step.py), so
    # small findings are not drowned by the copied rest of the image; 0 = the paper's plain loss
    edit_weight: float = 0.0
    # what a pair's latent change is divided by: peak (a: 0–1) | mean (the edit's share of the loss is λ / (1 + λ)
    # for every pair, so a nodule and an enlarged heart weigh alike; λ = 1: half the loss)
    edit_weight_norm: str = "peak"
    lora_rank: int = 8  # LoRA rank r
    lora_alpha: float = 8.0  # LoRA scale α (update = α/r · BA)
    placeholder_token: str = "<medcf>"  # textual inversion: the new token
    initializer_token: str = "shadow"  # textual inversion: the new embedding starts from this word's
    modifier_token: bool = False  # custom-diffusion: also learn placeholder_token as a new word V* (Kumari et al.)
    # textual inversion / dreambooth: prompt of the instance images, "{prompt}" in it is the clinical prompt;
    # "" = the clinical prompt (dreambooth), "<placeholder> {prompt}" (textual inversion: first, so never cut off)
    instance_prompt: str = ""
    class_prompt: str = ""  # dreambooth (required), custom-diffusion (optional): prompt of the class images
    num_class_images: int = 32  # dreambooth, custom-diffusion: class images generated by the model before training
    prior_loss_weight: float = 1.0  # dreambooth, custom-diffusion: weight λ of the prior-preservation loss
    checkpoint_every: int = 500  # steps between resumable checkpoints (0 = only at the end)
    checkpoints_kept: int = 2  # older checkpoints are deleted
    sample_every: int = 500  # steps between sample grids (0 = only at the end)
    seed: int = 0  # seeds model init, data order, noise and sampling
    encoding_cache_mb: float = 2048  # memory for frozen encoders' outputs, computed once (0 = encode every step)
    gradient_checkpointing: bool = False  # recompute activations in backward: ~30% more compute, far less memory
    use_8bit_adam: bool = False  # bitsandbytes AdamW8bit, 8-bit Adam moments (Dettmers et al. 2022); CUDA, extra [gpu]

    @property
    def learns_token(self) -> bool:
        """Whether the run adds placeholder_token to the vocabulary: textual inversion, Custom Diffusion's V*."""
        return self.method == "textual-inversion" or (self.method == "custom-diffusion" and self.modifier_token)

    @property
    def uses_prior(self) -> bool:
        """Whether class images regularise the run: DreamBooth's prior preservation, Custom Diffusion's
        regularisation images when a class_prompt is given (Kumari et al. §3.1)."""
        return self.method == "dreambooth" or (self.method == "custom-diffusion" and bool(self.class_prompt))

    @property
    def instance_template(self) -> str:
        """instance_prompt as training uses it: for a new token "" puts the placeholder first, where the text
        encoder's window never cuts it off (a placeholder after a long clinical prompt would be lost)."""
        if self.learns_token and not self.instance_prompt:
            return f"{self.placeholder_token} {{prompt}}"
        return self.instance_prompt


@dataclass
class SampleConfig:
    prompts: list[str] = field(default_factory=list)  # prompts of the sample grids ("" = from held-out rows)
    num_images: int = 8  # images per grid
    num_inference_steps: int = 25  # sampler steps
    guidance_scale: float = 3.0  # classifier-free guidance weight (InstructPix2Pix: the text's, s_T)
    image_guidance_scale: float = 1.5  # InstructPix2Pix: the source image's guidance weight s_I (Brooks et al.)
    scheduler: str = "ddim"  # ddim | ddpm | dpm++
    latent_drift: float | list[float] | None = None  # δ at inference (prior + every step); None = train.latent_drift


@dataclass
class VaeConfig:
    max_steps: int = 2000  # optimizer steps of `medcf train-vae`
    batch_size: int = 16  # images per micro-batch
    learning_rate: float = 1e-4  # AdamW
    kl_weight: float = 1e-6  # β of the KL term (LDM's KL-f4 regularisation is tiny)
    latent_channels: int = 4  # channels of the latent
    block_out_channels: list[int] = field(default_factory=lambda: [32, 64, 128])  # 3 blocks = ×4 downsampling


@dataclass
class GanConfig:
    latent_dim: int = 128  # size of the GAN's noise z (model.backend=gan; model.tiny uses 16)
    r1_gamma: float = 1.0  # weight γ of the R1 penalty on real images (Mescheder et al. 2018); 0 = off
    # generator widths, each block after the first doubling every side (model.tiny uses [32, 16, 8]); narrower
    # trains volumes faster on a CPU: [128, 64, 32, 16] costs about a quarter of the default per step
    block_out_channels: list[int] = field(default_factory=lambda: [256, 128, 64, 32])
    discriminator_channels: int = 64  # the patch discriminator's first width (model.tiny uses 8)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    vae: VaeConfig = field(default_factory=VaeConfig)
    gan: GanConfig = field(default_factory=GanConfig)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the YAML file (if any), then `a.b=value` overrides; unknown keys are errors."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            message = f"{path}: cannot read the config ({error}); pass a YAML file like configs/example.yaml"
            raise ValueError(message) from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: the config must be a YAML mapping of sections (data:, model:, train:...)")
    source = str(path) if path is not None else "config"
    config = _build(Config, values, source)
    for override in overrides:
        config = apply_override(config, override)
    check_ranges(config)
    check_spatial_dims(config)
    return config


def apply_override(config: Config, override: str) -> Config:
    """`train.learning_rate=3e-4` → a new Config; values parse as YAML (str fields as text) and are type-checked."""
    key, sep, text = override.partition("=")
    if not sep or "." not in key:
        raise ValueError(f"--set {override!r}: write section.field=value, e.g. train.max_steps=200")
    section, name = key.strip().split(".", 1)
    values = config_dict(config)
    if section not in values or name not in values[section]:
        known = sorted(f"{s}.{n}" for s, fields in values.items() for n in fields if s == section) or sorted(values)
        raise ValueError(f"--set {override!r}: unknown key {key!r}; known: {', '.join(known)}")
    # str fields take the text verbatim: prompts like "<medcf> {prompt}" are not YAML mappings.
    verbatim = typing.get_type_hints(typing.get_type_hints(Config)[section])[name] is str
    values[section][name] = text if verbatim or not text.strip() else yaml.safe_load(text)
    return _build(Config, values, f"--set {override}")


def config_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (every field, defaults included) so a run can be repeated."""
    Path(path).write_text(yaml.safe_dump(config_dict(config), sort_keys=False))


def _build(cls: type, values: dict[str, Any], source: str, prefix: str = "") -> Any:
    """Instantiate dataclass `cls` from a mapping, recursing into sections and checking keys and types."""
    if not isinstance(values, dict):
        raise ValueError(f"{source}: {prefix.rstrip('.') or 'the config'} must be a mapping of fields, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    if unknown := sorted(set(values) - names):
        where = f"section {prefix.rstrip('.')!r}" if prefix else "the top level"
        raise ValueError(f"{source}: unknown key(s) {unknown} in {where}; known: {sorted(names)}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, source, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_type(value, hint, f"{source}: {prefix}{name}")
    return cls(**kwargs)


def _check_type(value: Any, hint: Any, where: str) -> Any:
    """Accept `value` for a field typed `hint` (int is accepted as float); raise naming the field otherwise."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    value = _yaml_float(value) if float in options and str not in options else value
    for option in options:
        origin = typing.get_origin(option)
        if origin is list and isinstance(value, list):
            (item,) = typing.get_args(option)
            if all(_is_instance(v, item) for v in value):
                return [float(v) if item is float else v for v in value]
        elif origin is None and _is_instance(value, option):
            return float(value) if option is float else value
    raise ValueError(f"{where}={value!r}: expected {_type_name(hint)}")


def _yaml_float(value: Any) -> Any:
    """YAML 1.1 reads `1e-4` (no dot) as a string; a float field takes it as the number it obviously is."""
    try:
        return float(value) if isinstance(value, str) else value
    except ValueError:
        return value


def _is_instance(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, kind) or (kind is float and isinstance(value, int))


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
