"""Run configuration: defaults, YAML, `--set` overrides, strict keys and types, the example file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medcf.config import Config, apply_override, config_dict, load_config, save_config
from medcf.config_checks import check_paths

EXAMPLE = Path(__file__).parents[1] / "configs" / "example.yaml"


def test_defaults_without_a_file() -> None:
    assert load_config() == Config()


def test_yaml_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  root: cxr\n  resolution: 128\ntrain:\n  learning_rate: 3.0e-4\n")
    config = load_config(path, ["train.max_steps=50", "train.latent_drift=[0.1, 0, 0, 0.05]", "data.filter="])
    assert (config.data.root, config.data.resolution, config.train.learning_rate) == ("cxr", 128, 3e-4)
    assert config.train.max_steps == 50
    assert config.train.latent_drift == [0.1, 0.0, 0.0, 0.05]
    assert config.data.filter == ""
    assert config.model == Config().model  # untouched sections keep their defaults


def test_int_is_accepted_for_float_and_kept_float() -> None:
    config = apply_override(Config(), "train.latent_drift=0")
    assert config.train.latent_drift == 0.0 and isinstance(config.train.latent_drift, float)


def test_exponent_without_dot_is_a_float() -> None:
    assert apply_override(Config(), "train.learning_rate=1e-3").train.learning_rate == 1e-3  # YAML 1.1: a string


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.max_step=5", "unknown key 'train.max_step'"),
        ("trainer.max_steps=5", "unknown key"),
        ("max_steps=5", "section.field=value"),
        ("train.max_steps", "section.field=value"),
        ("train.max_steps=many", "expected int"),
        ("train.max_steps=2.5", "expected int"),
        ("model.tiny=1", "expected bool"),
        ("train.latent_drift=[a]", "expected float"),
    ],
)
def test_bad_overrides_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        apply_override(Config(), override)


def test_unknown_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  learning_rat: 1e-4\n")
    with pytest.raises(ValueError, match=r"run.yaml: unknown key\(s\) \['learning_rat'\] in section 'train'"):
        load_config(path)


@pytest.mark.parametrize("text", ["- a\n- b\n", "data: [1, 2]\n", "data:\n  root: [unclosed\n"])
def test_malformed_yaml_names_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match="bad.yaml"):
        load_config(path)


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    config = load_config(None, ["train.method=lora", "train.latent_drift=[0.1, 0.1, 0.0, 0.0]", "sample.prompts=[a]"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


def test_example_yaml_documents_every_field() -> None:
    config = load_config(EXAMPLE)
    text = EXAMPLE.read_text()
    for section, fields in config_dict(config).items():
        for name in fields:
            line = next((line for line in text.splitlines() if line.strip().startswith(f"{name}:")), None)
            assert line is not None and "#" in line, f"{section}.{name} is not documented in {EXAMPLE.name}"
    assert config_dict(config) | {"data": None} == config_dict(Config()) | {"data": None}


def test_check_paths_names_the_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "metadata.csv").write_text("id,path\n")
    check_paths(load_config(None, [f"data.root={tmp_path}"]))  # present: no error
    with pytest.raises(ValueError, match="data.root is empty"):
        check_paths(load_config())
    with pytest.raises(ValueError, match="other.csv: dataset table not found"):
        check_paths(load_config(None, [f"data.root={tmp_path}", "data.csv=other.csv"]))
    with pytest.raises(ValueError, match="model.vae=absent: folder not found"):
        check_paths(load_config(None, [f"data.root={tmp_path}", "model.vae=absent"]))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.max_steps=-5", "train.max_steps=-5: must be ≥ 1"),
        ("data.resolution=7", "data.resolution=7: must be a multiple of 8, at least 16"),
        ("sample.guidance_scale=nan", "sample.guidance_scale=nan: must be finite"),
        ("train.latent_drift=[0.1, .inf, 0, 0]", "train.latent_drift=[0.1, inf, 0.0, 0.0]: must be finite"),
        ("train.seed=18446744073709551616", "train.seed=18446744073709551616: must be in 0..2^63-1"),
        ("data.holdout_fraction=1", "data.holdout_fraction=1.0: must be in [0, 1)"),
        ("train.learning_rate=0", "train.learning_rate=0.0: must be a finite number > 0"),
    ],
)
def test_out_of_range_fields_are_refused_when_the_config_loads(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        load_config(None, [override])


def test_train_refuses_a_negative_step_count_before_writing_its_folder(tmp_path: Path) -> None:
    from test_cli import medcf

    result = medcf("train", "--set", "train.max_steps=-5", "--out", tmp_path / "run", cwd=tmp_path)
    assert result.returncode == 1 and "train.max_steps=-5: must be ≥ 1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
