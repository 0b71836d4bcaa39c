"""The benchmark suites: the source papers' experiments at small scale, as training runs.

cxr-synth (chest X-ray) and brain-synth (brain MRI, Latent Drifting's brain experiments). A generic base model
is trained first on normal studies only, with one plain prompt ("A normal chest X-ray.", "A normal brain MRI.")
— the stand-in for Stable Diffusion, which never saw a finding named. Every experiment fine-tunes that base:
- methods (Latent Drift, Yeganeh et al. CVPR 2025, Table 1): basic fine-tune, textual inversion, DreamBooth and
  Custom Diffusion (and LoRA in cxr-synth), each without and with Latent Drift δ in training and sampling;
- prompts (Latent Drift §4 / RoentGen): simple vs diverse prompts, with and without patient information.
Each run is a list of `medcf train --set` overrides, so any row of the table is reproducible by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

IDENTIFIER = "<medcf>"  # textual inversion's and Custom Diffusion's new token; DreamBooth's identifier (one word)


@dataclass(frozen=True)
class SuiteSize:
    """How big each stage is: `quick` for CI (tiny models, minutes), `full` for the committed table."""

    subjects: int
    resolution: int
    tiny: bool  # toy-size components instead of a trained VAE + medcf's scratch U-Net
    vae_steps: int
    base_steps: int
    finetune_steps: int
    batch_size: int
    classifier_steps: int
    eval_samples: int  # held-out patients per model for FID/KID and effectiveness
    eval_steps: int  # DDIM steps when sampling
    attribution_cases: int
    effect_pairs: int
    latent_drift: float  # δ of the "with Latent Drift" rows (the paper's grid spans ±0.2)
    checkpoint_every: int  # resumable checkpoints, so a stopped full benchmark continues mid-run


CXR_SIZES = {
    "quick": SuiteSize(
        subjects=120, resolution=32, tiny=True, vae_steps=0, base_steps=30, finetune_steps=20, batch_size=8,
        classifier_steps=40, eval_samples=16, eval_steps=4, attribution_cases=3, effect_pairs=8, latent_drift=0.1,
        checkpoint_every=0,
    ),
    "full": SuiteSize(
        subjects=2000, resolution=64, tiny=False, vae_steps=1500, base_steps=1500, finetune_steps=500,
        batch_size=16, classifier_steps=1500, eval_samples=200, eval_steps=25, attribution_cases=24,
        effect_pairs=200, latent_drift=0.1, checkpoint_every=100,
    ),
}  # fmt: skip
# brain-synth's full size fits one long CPU session: the shipped brain64 VAE (trained on another draw of the
# cohort, seed 0; this suite's cohort is seed 1) instead of a VAE stage, shorter fine-tunes, 100 samples per row
BRAIN_SIZES = {
    "quick": CXR_SIZES["quick"],
    "full": SuiteSize(
        subjects=2000, resolution=64, tiny=False, vae_steps=0, base_steps=1000, finetune_steps=250,
        batch_size=16, classifier_steps=800, eval_samples=100, eval_steps=20, attribution_cases=16,
        effect_pairs=32, latent_drift=0.1, checkpoint_every=50,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Suite:
    """One benchmark suite: its cohort (`medcf synth <kind>`), base model and fine-tuning methods."""

    name: str
    kind: str
    modality: str
    base_filter: str  # the base model's studies: normal ones only
    class_prompt: str  # DreamBooth's prior-preservation class
    methods: tuple[str, ...]
    sizes: dict[str, SuiteSize]
    data_seed: int = 0  # the cohort's seed
    vae_model: str = ""  # a shipped model whose VAE the full size uses instead of training one


SUITES = {
    "cxr-synth": Suite("cxr-synth", "cxr", "chest X-ray", "no_finding == 1", "A chest X-ray.",
                       ("basic fine-tune", "LoRA", "textual inversion", "DreamBooth", "Custom Diffusion"), CXR_SIZES),
    "brain-synth": Suite("brain-synth", "brain", "brain MRI", "lesion == 0 and alzheimers_disease == 0",
                         "A brain MRI.", ("basic fine-tune", "textual inversion", "DreamBooth", "Custom Diffusion"),
                         BRAIN_SIZES, data_seed=1, vae_model="brain64"),
}  # fmt: skip


@dataclass(frozen=True)
class SuiteRun:
    """One fine-tuning run of the suite: its table group, its `--set` overrides and how it is prompted."""

    name: str
    group: str  # "methods" | "prompts"
    overrides: tuple[str, ...]
    instance_prompt: str = ""  # "{prompt}" inside it is the clinical prompt (training/step.py)
    latent_drift: float = 0.0  # δ of the fine-tuning (train.latent_drift)
    drift_in_sampling: bool = True  # sample with the same δ (prior + every step, Eq. 4), or plainly

    @property
    def sampling_drift(self) -> float:
        return self.latent_drift if self.drift_in_sampling else 0.0


def common_overrides(size: SuiteSize, data: str, seed: int) -> tuple[str, ...]:
    return (
        f"data.root={data}", f"data.resolution={size.resolution}", f"train.batch_size={size.batch_size}",
        f"train.seed={seed}", f"train.checkpoint_every={size.checkpoint_every}", "train.sample_every=0",
        "sample.num_images=4", f"sample.num_inference_steps={size.eval_steps}",
    )  # fmt: skip


def base_overrides(suite: Suite, size: SuiteSize, data: str, vae: str, seed: int) -> tuple[str, ...]:
    model = ("model.tiny=true",) if size.tiny else (f"model.vae={vae}",)
    return (
        *common_overrides(size, data, seed), *model, f"data.filter={suite.base_filter}", "data.prompt_style=simple",
        "data.patient_info=false", f"train.max_steps={size.base_steps}", "train.learning_rate=2e-4",
    )  # fmt: skip


def suite_runs(suite: Suite, size: SuiteSize) -> list[SuiteRun]:
    """The fine-tuning runs; `data.root`, `model.pretrained` and the common overrides are added when run."""
    steps = f"train.max_steps={size.finetune_steps}"
    wrapped = f"{IDENTIFIER} {{prompt}}"  # first: the text encoder's window never cuts it off
    methods = {
        "basic fine-tune": ("train.method=full", "train.learning_rate=1e-4"),
        "LoRA": ("train.method=lora", "train.learning_rate=1e-3", "train.lora_rank=8", "train.lora_alpha=8"),
        "textual inversion": ("train.method=textual-inversion", "train.learning_rate=5e-3",
                              f"train.placeholder_token={IDENTIFIER}", f"train.instance_prompt={wrapped}"),
        "DreamBooth": ("train.method=dreambooth", "train.learning_rate=1e-4", f"train.instance_prompt={wrapped}",
                       f"train.class_prompt={suite.class_prompt}", "train.num_class_images=16"),
        # W_k, W_v and the modifier token V* at 1e-5 per image of the batch (diffusers' example: 1e-5 with --scale_lr)
        "Custom Diffusion": ("train.method=custom-diffusion", f"train.learning_rate={1e-5 * size.batch_size:g}",
                             "train.modifier_token=true", f"train.placeholder_token={IDENTIFIER}",
                             f"train.instance_prompt={wrapped}"),
    }  # fmt: skip
    runs = []
    for method in suite.methods:
        options = methods[method]
        instance = wrapped if "instance_prompt" in " ".join(options) else ""
        for delta in (0.0, size.latent_drift):
            drift = (f"train.latent_drift={delta}",)
            label = f"{method}, δ={delta:g}"
            runs.append(SuiteRun(label, "methods", (*options, steps, *drift), instance, delta))
        # the same drifted model sampled without drift: does δ help in fine-tuning, in sampling, or both?
        label = f"{method}, δ={size.latent_drift:g} in training only"
        drift = (f"train.latent_drift={size.latent_drift}",)
        runs.append(SuiteRun(label, "methods", (*options, steps, *drift), instance, size.latent_drift, False))
    for style in ("simple", "diverse"):
        for info in (False, True):
            label = f"{style} prompts, {'with' if info else 'without'} patient info"
            options = ("train.method=full", "train.learning_rate=1e-4", steps, f"data.prompt_style={style}",
                       f"data.patient_info={str(info).lower()}")  # fmt: skip
            runs.append(SuiteRun(label, "prompts", options))
    return runs


def slug(name: str) -> str:
    """A folder name for a run label: 'LoRA, δ=0.1' → 'lora-d0.1'."""
    text = name.lower().replace("δ=", "d").replace(", ", "-").replace(" ", "-")
    return "".join(character for character in text if character.isalnum() or character in "-.")
