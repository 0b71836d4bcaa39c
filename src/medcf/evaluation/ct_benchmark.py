"""`medcf benchmark --suite ct-synth`: train the 3-D diffusion model and the 3-D GAN of ct_suite.py on one CT
cohort, and score both against the same held-out volumes and the renderer's truth:

- generation: a Fréchet distance volume-wise on named CT features (`volume_frechet_distance`) and slice-wise on
  EfficientNet-Lite0 features of the central axial slices, beside real training volumes against the same held-out
  ones (the distance two real samples keep);
- DGM-VLC's finding: the smoking effect map (`medcf effect --attribute smoking`) with its bootstrap CI in HU,
  beside the renderer's true shift on the same subjects;
- edits on unseen patients (ct_edits.py): smoking removed and a nodule removed, each against the true volume.

Stages are cached in the work folder as in the 2-D suites (stages.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from medcf.attribution.effect_folder import effect_to_folder
from medcf.data.volume import dataset_value_range, from_unit_range, read_volume, to_unit_range
from medcf.evaluation.ct_edits import CT_EDITS, ct_cases, ct_edit_scores, edit_ct_cases
from medcf.evaluation.ct_report import write_ct_benchmark
from medcf.evaluation.ct_suite import BACKENDS, CT_SIZES, CT_SUITE, MODALITY, CtSize, model_overrides, vae_overrides
from medcf.evaluation.generation import rendered_prompts
from medcf.evaluation.stages import (
    cached_stage,
    placement_key,
    synthesized,
    trained,
    trained_vae,
    training_seconds,
    weights_stamp,
)
from medcf.metrics import EfficientNetLite0Features, fid_kid
from medcf.metrics.volumes import axial_slices, ct_features, volume_frechet_distance
from medcf.models import gan_generate, load_components, load_gan
from medcf.models.device import resolve_device, run_settings
from medcf.models.gan_components import gan_volume_units
from medcf.models.precision import inference_precision
from medcf.prompts import PromptTemplate
from medcf.training.data import HOLDOUT, TRAIN, load_cohorts
from medcf.training.record import environment
from medcf.volumes.files import model_value_range
from medcf.volumes.sampling import generate_volumes

SEED = 0
EDIT_STRENGTH = 0.6  # the diffusion edits' share of re-run DDIM steps (the 2-D suites' attribution strength)


def run_ct_benchmark(
    work: str | Path, out: str | Path, *, quick: bool = False, device: str = "auto", precision: str = "auto"
) -> Path:
    """Run ct-synth in `work` (cached stages), write `out/ct-synth[-quick].md`, `.json` and figures."""
    placement = run_settings(resolve_device(device), precision)
    place = {"device": placement["device"].split(":")[0], "precision": placement["precision"]}
    size, work, started = CT_SIZES["quick" if quick else "full"], Path(work), time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    data = stage_data(size, work / "data")
    vae = stage_vae(size, data, work / "vae")
    held_out, reference = real_volumes(data, size.eval_samples)
    rows, figures = [_real_row(held_out, reference)], work / "figures"
    figures.mkdir(exist_ok=True)
    for backend in BACKENDS:
        model = trained(model_overrides(size, backend, str(data), str(vae), SEED), work / "runs" / backend.lower())
        rows.append({"model": backend, **scored_run(model, backend, held_out, size, figures, place, device)})
    results = {
        "suite": CT_SUITE, "size": "quick" if quick else "full", "settings": asdict(size), "seed": SEED,
        **placement, "runs": rows, "overrides": {b: model_overrides(size, b, "DATA", "VAE", SEED) for b in BACKENDS},
        "environment": environment(), "seconds": time.perf_counter() - started,
    }  # fmt: skip
    return write_ct_benchmark(results, Path(out), f"{CT_SUITE}{'-quick' if quick else ''}", figures)


def stage_data(size: CtSize, folder: Path) -> Path:
    return synthesized(CT_SUITE, "ct", folder, n=size.subjects, size=size.side, seed=SEED, counterfactuals=False)


def stage_vae(size: CtSize, data: Path, folder: Path) -> Path:
    if size.tiny:
        return folder  # toy models bring their own VAE
    return trained_vae(vae_overrides(size, str(data), SEED), folder)


def real_volumes(data: Path, count: int) -> tuple[dict, np.ndarray]:
    """The first `count` held-out patients (volumes in HU and rows) and as many training volumes."""
    cohorts = load_cohorts(data, modality=MODALITY, holdout_fraction=0.1, seed=SEED)
    count = min(count, len(cohorts[HOLDOUT]))
    records = {split: cohorts[split].records.head(count) for split in (HOLDOUT, TRAIN)}
    volumes = {split: np.stack([read_volume(path) for path in records[split]["path"]]) for split in records}
    rows = [{k: v for k, v in row.items() if k != "path"} for row in records[HOLDOUT].to_dict("records")]
    held_out = {"volumes": volumes[HOLDOUT], "rows": rows, "value_range": dataset_value_range(data)}
    return held_out, volumes[TRAIN]


def _real_row(held_out: dict, reference: np.ndarray) -> dict[str, object]:
    """Real training volumes scored as a model would be: the distances' floor at this sample size."""
    return {"model": "real training volumes", **_distances(held_out, reference)}


def _distances(held_out: dict, fake: np.ndarray) -> dict[str, object]:
    """Volume-wise and slice-wise Fréchet distances to the held-out volumes, and the CT measures' means of the fake
    volumes (HU). Slices of both sets are read through the cohort's value range, whatever the model's."""
    real = held_out["volumes"]
    slices = [axial_slices(to_unit_range(volumes, held_out["value_range"])[:, None]) for volumes in (real, fake)]
    slice_fid = fid_kid(*((s.clamp(-1, 1) + 1) / 2 for s in slices), EfficientNetLite0Features(), kid_subset_size=50)
    features = np.stack([ct_features(volume) for volume in fake])
    return {
        "volume FID (CT features)": volume_frechet_distance(real, fake),
        "slice FID (EfficientNet-Lite0)": slice_fid["fid_effnet"],
        "mean lung HU": 100 * float(features[:, -1].mean()), "LAA-950 of lung": float(features[:, -3].mean()),
        "volumes": len(fake),
    }  # fmt: skip


def scored_run(
    model: Path, backend: str, held_out: dict, size: CtSize, figures: Path, place: dict[str, str], device: str
) -> dict[str, object]:
    """`score_model`'s row for a trained run, cached beside it (keyed by its weights and placement), with the
    run's training time."""
    part = "generator" if backend == "GAN" else "unet"
    key = {"size": asdict(size), "seed": SEED, "weights": weights_stamp(model, part), **placement_key(place)}
    score = partial(score_model, model, backend, held_out, size, figures, precision=place["precision"], device=device)
    return {**cached_stage(model.parent / "scores.json", key, score), "train seconds": training_seconds(model.parent)}


def score_model(
    model: Path, backend: str, held_out: dict, size: CtSize, figures: Path, *, precision: str, device: str
) -> dict[str, object]:
    """One ct-synth row: distances of one sample per held-out row, the smoking effect beside the truth, and the
    edits of unseen patients against their true counterfactuals (figures' arrays go to `figures`)."""
    started, template = time.perf_counter(), PromptTemplate.from_pretrained(model)
    if backend == "GAN":
        net = load_gan(model, device=device)
        value_range, engine = gan_volume_units(net)[0], {"steps": size.inversion_steps}
    else:
        net = load_components(model, device=device)
        value_range = model_value_range(net)
        engine = {"num_inference_steps": size.eval_steps, "strength": EDIT_STRENGTH, "guidance_scale": 3.0}
    prompts = rendered_prompts(template, held_out["rows"], seed=SEED)
    with inference_precision(precision, net.generator.device if backend == "GAN" else net.unet.device):
        fake = _samples(net, backend, prompts, size, value_range)
    np.save(figures / f"samples-{backend.lower()}.npy", fake[:4])
    distances = _distances(held_out, fake)
    effect = effect_to_folder(model, "smoking", figures / f"effect-{backend.lower()}", n=size.effect_pairs,
                              cohort="ct", num_inference_steps=size.eval_steps, batch_size=size.batch_size, seed=SEED,
                              device=device, precision=precision)  # fmt: skip
    edits = []
    for edit in tqdm(CT_EDITS, desc=f"medcf benchmark: {backend} edits", unit="edit"):
        cases = ct_cases(edit, size.edit_cases, size=size.side, seed=SEED)
        edited = edit_ct_cases(net, template, cases, edit, value_range=value_range, **engine)
        np.savez_compressed(figures / f"edit-{backend.lower()}-{CT_EDITS[edit][0]}.npz", source=cases.volumes[0],
                            edited=edited[0], truth=cases.truths[0])  # fmt: skip
        edits.append({"edit": edit, **ct_edit_scores(cases, edited, seed=SEED)})
    return {**distances, "smoking effect": json.loads((effect / "effect.json").read_text()), "edits": edits,
            "score seconds": time.perf_counter() - started}  # fmt: skip


def _samples(net: object, backend: str, prompts: list[str], size: CtSize, value_range: tuple) -> np.ndarray:
    """One volume per prompt in HU (N, X, Y, Z), noise from one generator seeded SEED."""
    generator, batches = torch.Generator().manual_seed(SEED), []
    for start in tqdm(range(0, len(prompts), size.batch_size), desc=f"medcf benchmark: {backend}", unit="batch"):
        batch = prompts[start : start + size.batch_size]
        if backend == "GAN":
            volumes = gan_generate(net, batch, generator=generator)
        else:
            volumes = generate_volumes(net, batch, num_inference_steps=size.eval_steps, generator=generator)
        batches.append(from_unit_range(volumes[:, 0].float().cpu(), value_range).numpy())
    return np.concatenate(batches)
