"""InstructPix2Pix (Brooks et al. 2023): instructions from clinical rows, image pairs, the widened U-Net, the
two-guidance loop against diffusers' pipeline, conditioning dropout and a training run on true counterfactuals."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionInstructPix2PixPipeline

from medcf.config import load_config
from medcf.data import ImageTextDataset, collate_items
from medcf.data.adapters import oasis2
from medcf.data.pairs import counterfactual_pairs, longitudinal_image_pairs, pairs_table
from medcf.editing import counterfactual
from medcf.generate import generate, instruct_edit
from medcf.models import decode_latents, encode_images, load_components, save_components, tiny_components
from medcf.models.instruct import is_instruct, widen_for_source_image
from medcf.prompts import PromptTemplate
from medcf.prompts.edits import apply_edit
from medcf.prompts.instructions import NO_CHANGE, edit_instruction
from medcf.training import train
from medcf.training.step import StepInputs, edit_region_weights, pair_conditions, training_loss
from test_training_loop import tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pairs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny `medcf synth cxr` cohort with every true single-factor counterfactual."""
    from medcf.data.synthetic import synthesize

    return synthesize("cxr", tmp_path_factory.mktemp("pairs") / "cxr", n=8, size=32, seed=0, progress=False)


ROW = {"age": 60, "sex": "F", "smoking": "never", "pleural_effusion": 1, "nodule": 0, "no_finding": 0}


@pytest.mark.parametrize(
    ("edit", "instruction"),
    [
        ("pleural_effusion=absent", "remove the pleural effusion"),
        ("nodule=present", "add a nodule"),
        ("age+=20", "make the patient 20 years older"),
        ("age-=5", "make the patient 5 years younger"),
        ("sex=M", "make the patient male"),
        ("smoking=current", "make the patient a current smoker"),
    ],
)
def test_an_instruction_names_the_difference_of_two_rows(edit: str, instruction: str) -> None:
    assert edit_instruction(ROW, apply_edit(ROW, edit)) == instruction
    assert edit_instruction(ROW, ROW) == NO_CHANGE
    both = apply_edit(apply_edit(ROW, "nodule=1"), "age+=10")
    assert edit_instruction(ROW, both) == "add a nodule, make the patient 10 years older"  # findings, then patient


def test_counterfactual_pairs_go_both_ways_and_stay_with_their_patient(pairs_root: Path, cxr_synth_root) -> None:
    with pytest.raises(ValueError, match="counterfactuals.csv: no counterfactuals; write the cohort with them"):
        counterfactual_pairs(cxr_synth_root)
    pairs = counterfactual_pairs(pairs_root)
    table = pd.read_csv(pairs_root / "counterfactuals.csv")
    records = pairs.records
    subjects = table["id"].nunique()
    assert len(records) == 2 * len(table) + subjects and records["patient_id"].nunique() == subjects
    first = table.iloc[0]
    forward = records.set_index("id").loc[f"{first['id']}_{first['factor']}={first['value']}"]
    assert forward["path"] == str(pairs_root / first["path"])
    assert forward["source_path"] == str(pairs_root / "images" / f"{first['id']}.png")
    backward = records.set_index("id").loc[f"{first['id']}_{first['factor']}={first['value']}_reversed"]
    assert backward["path"] == forward["source_path"] and backward["source_path"] == forward["path"]
    unchanged = records.set_index("id").loc[f"{first['id']}_unchanged"]
    assert unchanged["path"] == unchanged["source_path"] == forward["source_path"]
    assert unchanged["instruction"] == NO_CHANGE and (records["instruction"] == NO_CHANGE).sum() == subjects
    assert len(counterfactual_pairs(pairs_root, identity=False).records) == 2 * len(table)
    nodules = records[records["id"].str.contains("_nodule=1$")]
    assert set(nodules["instruction"]) == {"add a nodule"} and set(nodules["nodule"]) == {1}
    item = ImageTextDataset(pairs, PromptTemplate("chest X-ray"), resolution=16)[0]
    assert item["prompt"] == records["instruction"][0] and item["source_pixel_values"].shape == (1, 16, 16)


def test_repeat_visits_and_a_csv_become_pairs(oasis2_root: Path, tmp_path: Path, cxr_synth_root: Path) -> None:
    visits = longitudinal_image_pairs(oasis2(oasis2_root))
    first = visits.records.iloc[0]
    assert first["instruction"].startswith("make the patient") and "years older" in first["instruction"]
    assert first["source_path"] != first["path"] and first["source_slice_index"] == first["slice_index"]
    images = sorted((cxr_synth_root / "images").glob("*.png"))[:2]
    (tmp_path / "pairs.csv").write_text(f"source_path,target_path,instruction\n{images[0]},{images[1]},add a nodule\n")
    table = pairs_table(tmp_path)
    assert table.records.loc[0, ["path", "source_path", "instruction"]].tolist() == [
        str(images[1]), str(images[0]), "add a nodule"
    ]  # fmt: skip


def test_the_widened_unet_predicts_as_before_and_samples_as_the_vanilla_pipeline(tmp_path: Path) -> None:
    components = tiny_components()
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    text = torch.randn(2, 77, components.text_encoder.config.hidden_size)
    before = components.unet(latents, 10, encoder_hidden_states=text).sample
    widen_for_source_image(components.unet)
    source = torch.randn_like(latents)
    after = components.unet(torch.cat([latents, source], dim=1), 10, encoder_hidden_states=text).sample
    torch.testing.assert_close(after, before)  # zero-initialised source channels (Brooks et al. §3.2)
    with torch.no_grad():
        components.unet.conv_in.weight.normal_(0, 0.1)  # so that the source image matters below
    model = save_components(components, tmp_path / "model")
    index = json.loads((model / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionInstructPix2PixPipeline"
    loaded = load_components(model)
    assert is_instruct(loaded)
    images = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    instructions = ["remove the nodule", "add a nodule"]
    ours = instruct_edit(loaded, images * 2 - 1, instructions, num_inference_steps=4, latents=noise)
    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(model, safety_checker=None)
    pipe.scheduler = DDIMScheduler.from_config(loaded.scheduler.config)
    theirs = pipe(instructions, image=images, num_inference_steps=4, latents=noise, output_type="pt").images
    torch.testing.assert_close((ours + 1) / 2, theirs, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="edits given images; use `medcf counterfactual --engine instruct`"):
        generate(loaded, ["a chest X-ray"], num_inference_steps=1)


def test_below_strength_one_the_instruct_engine_starts_from_its_own_inversion_of_the_source() -> None:
    components = tiny_components(source_image=True)
    with torch.no_grad():
        components.unet.conv_in.weight.normal_(0, 0.1)
    images = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    instructions, options = ["remove the nodule"] * 2, {"num_inference_steps": 10, "guidance_scale": 3.0}
    runs = {
        strength: counterfactual(components, images, ["a", "a"], instructions, engine="instruct", strength=strength,
                                 generator=torch.Generator().manual_seed(0), **options)
        for strength in (0.1, 0.5, 1.0)
    }  # fmt: skip
    reconstruction = decode_latents(components, encode_images(components, images, sample=False))
    distances = [(runs[s] - reconstruction).abs().mean().item() for s in (0.1, 0.5, 1.0)]
    assert distances[0] < distances[1] < distances[2]  # t₀ = strength·T: the less, the closer to the source
    from_noise = instruct_edit(components, images, instructions, generator=torch.Generator().manual_seed(0), **options)
    torch.testing.assert_close(runs[1.0], from_noise)  # strength 1: the paper's edit from pure noise
    again = counterfactual(components, images, ["a", "a"], instructions, engine="instruct", strength=0.5,
                           generator=torch.Generator().manual_seed(7), **options)  # fmt: skip
    torch.testing.assert_close(again, runs[0.5], rtol=0, atol=0)  # an inversion, not a draw: no seed matters
    residual = counterfactual(components, images, ["a", "a"], [NO_CHANGE] * 2, engine="instruct", strength=0.5,
                              residual=True, **options)  # fmt: skip
    torch.testing.assert_close(residual, images, rtol=0, atol=1e-6)  # no generator needed: the null edit is exact
    with torch.no_grad():  # ε̂ ≡ 0: DDIM inversion is exact, so regenerating retraces the source; a noised start
        components.unet.conv_out.weight.zero_()  # would keep its noise
        components.unet.conv_out.bias.zero_()
    kept = counterfactual(components, images, ["a", "a"], [NO_CHANGE] * 2, engine="instruct", strength=0.5, **options)
    torch.testing.assert_close(kept, reconstruction, rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="pass z_t at timesteps"):
        instruct_edit(components, images, instructions, timesteps=torch.tensor([500, 250]))


def test_conditioning_dropout_drops_text_image_and_both_equally_often() -> None:
    prompts, keep = pair_conditions(["edit"] * 20000, 0.1, torch.Generator().manual_seed(0))
    text = torch.tensor([prompt == "" for prompt in prompts])
    image = keep == 0
    shares = [float(share.float().mean()) for share in (text & ~image, image & ~text, text & image)]
    assert shares == pytest.approx([0.05, 0.05, 0.05], abs=0.006)  # p = dropout / 2 each (Brooks et al. §3.2.1)


def test_the_edit_weight_weighs_the_latent_pixels_a_pair_changes(pairs_root: Path) -> None:
    source = torch.zeros(2, 4, 8, 8)
    target = source.clone()
    target[0, :, 3, 3], target[0, :, 3, 4] = 2.0, 1.0  # an edit of two latent pixels, one twice the other
    weights = edit_region_weights(target, source, 20.0)
    assert weights.shape == (2, 1, 8, 8) and weights[0, 0, 3, 3] == 21 and weights[0, 0, 3, 4] == 11
    assert weights[0].sum() == 62 + 21 + 11 and (weights[1] == 1).all()  # an unchanged pair: the plain loss
    volume = edit_region_weights(
        target.unsqueeze(2).repeat(1, 1, 3, 1, 1), source.unsqueeze(2).repeat(1, 1, 3, 1, 1), 20.0
    )
    assert torch.equal(volume, weights.unsqueeze(2).repeat(1, 1, 3, 1, 1))  # 3-D latents weigh the same way
    pairs = counterfactual_pairs(pairs_root)
    dataset, ids = ImageTextDataset(pairs, PromptTemplate("chest X-ray"), resolution=32), pairs.records["id"]
    components = tiny_components(source_image=True)

    def loss(edit_weight: float, record: int) -> torch.Tensor:
        batch = collate_items([dataset[record]])
        inputs = StepInputs(device=torch.device("cpu"), prompt_dropout=0.0, edit_weight=edit_weight)
        with torch.no_grad():
            return training_loss(components, batch, inputs, torch.Generator().manual_seed(0))

    unchanged, edited = int(ids.str.endswith("_unchanged").idxmax()), int(ids.str.contains("=").idxmax())
    assert loss(20.0, unchanged) == loss(0.0, unchanged)
    assert abs(loss(20.0, edited) - loss(0.0, edited)) > 1e-4


def test_the_mean_norm_gives_every_edit_the_same_share_of_the_loss_whatever_its_size() -> None:
    source = torch.zeros(3, 4, 8, 8)
    target = source.clone()
    target[0, :, 3, 3], target[0, :, 3, 4] = 2.0, 1.0  # a nodule-sized edit: two latent pixels
    target[1, :, 2:6, 1:7] = 0.5  # an edit of 24 latent pixels, an enlarged heart
    weights = edit_region_weights(target, source, 3.0, norm="mean")
    extra = (weights - 1).flatten(1).sum(dim=1)
    assert extra.tolist() == pytest.approx([3 * 64, 3 * 64, 0])  # λ times the image's weight; unchanged: plain
    assert weights[0, 0, 3, 3] - 1 == pytest.approx(2 * (weights[0, 0, 3, 4] - 1))  # in proportion to the change
    assert weights[1, 0, 3, 3] == pytest.approx(1 + 3 * 64 / 24)
    peak = edit_region_weights(target, source, 3.0)  # the default: the largest change weighs 1 + λ in any pair
    assert peak[:2].flatten(1).amax(dim=1).tolist() == [4.0, 4.0]


def test_a_run_on_true_counterfactuals_trains_the_source_channels(pairs_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="instruct-pix2pix trains on image pairs: set data.pairs"):
        train(tiny_config(pairs_root, "train.method=instruct-pix2pix"), tmp_path / "no", progress=False)
    with pytest.raises(ValueError, match="train.edit_weight weights the edit of image pairs"):
        train(tiny_config(pairs_root, "train.edit_weight=5"), tmp_path / "no", progress=False)
    pairs = ["train.method=instruct-pix2pix", "data.pairs=counterfactuals", "train.max_steps=3"]
    with pytest.raises(ValueError, match="train.edit_weight=-1.0: use 0"):
        train(tiny_config(pairs_root, *pairs, "train.edit_weight=-1"), tmp_path / "no", progress=False)
    with pytest.raises(ValueError, match="train.edit_weight_norm='area': use peak or mean"):
        train(tiny_config(pairs_root, *pairs, "train.edit_weight_norm=area"), tmp_path / "no", progress=False)
    model = train(tiny_config(pairs_root, *pairs, "train.edit_weight=5"), tmp_path / "run", progress=False)
    components = load_components(model)
    assert components.unet.conv_in.weight[:, 4:].abs().sum() > 0  # the source channels left zero and learned
    assert {"pairs: counterfactuals", "edit_weight: 5.0"} <= set(
        (tmp_path / "run" / "config.yaml").read_text().split("\n  ")
    )
    held = collate_items([ImageTextDataset(counterfactual_pairs(pairs_root), PromptTemplate("chest X-ray"),
                                           resolution=32)[index] for index in range(2)])  # fmt: skip
    edited = instruct_edit(components, held["source_pixel_values"], held["prompt"], num_inference_steps=2)
    assert edited.shape == held["pixel_values"].shape and torch.isfinite(edited).all()
    with pytest.raises(ValueError, match="data.pairs='counterfactuals' is for train.method=instruct-pix2pix"):
        train(load_config(None, [f"data.root={pairs_root}", "data.pairs=counterfactuals", "model.tiny=true"]),
              tmp_path / "other", progress=False)  # fmt: skip


@pytest.mark.slow  # end to end through subprocesses, ~15-25 s: runs in CI's slow pass
def test_the_instruct_engine_edits_and_attributes_from_the_command_line(tmp_path: Path) -> None:
    from medcf.data import write_png
    from test_cli import medcf

    components = tiny_components(source_image=True)
    model = save_components(components, tmp_path / "model")
    image = tmp_path / "x.png"
    write_png(image, torch.linspace(0, 1, 32 * 32).reshape(32, 32).numpy(), bit_depth=16)
    edit = ["--image", image, "--row", "age=60", "--steps", 2, "--engine", "instruct", "--image-guidance", 2.0]
    result = medcf("counterfactual", "--model", model, *edit, "--set", "pleural_effusion=0", "--out", tmp_path / "cf")
    assert result.returncode == 0, result.stderr
    settings = json.loads((tmp_path / "cf" / "settings.json").read_text())
    assert settings["target prompt"] == "remove the pleural effusion" and settings["image guidance"] == 2.0
    result = medcf("attribute", "--model", model, *edit, "--row", "nodule=1", "--seeds", 2, "--out", tmp_path / "at")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "at" / "settings.json").read_text())["healthy prompt"] == "remove the nodule"
    from medcf.editing import counterfactual

    pixels = torch.zeros(1, 1, 32, 32)
    with pytest.raises(ValueError, match="this InstructPix2Pix model edits with engine='instruct', not 'inversion'"):
        counterfactual(components, pixels, ["a"], ["b"], num_inference_steps=2)
    with pytest.raises(ValueError, match="engine='instruct' needs an InstructPix2Pix model"):
        counterfactual(tiny_components(), pixels, ["a"], ["b"], engine="instruct", num_inference_steps=2)
