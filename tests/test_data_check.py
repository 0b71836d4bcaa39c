"""`medcf data check`, the adapter registry, release splits and the up-front read of every file before training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from medcf.config import load_config
from medcf.config_checks import ADAPTER_NAMES, check_paths
from medcf.data.adapters.registry import ADAPTERS, open_dataset
from medcf.data.split import train_holdout
from medcf.training.data import HOLDOUT, TRAIN, load_cohorts


@pytest.fixture
def damaged_root(cxr_synth_root: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The shared synthetic cohort copied, with its first image cut in half (a download broken off mid-file)."""
    root = tmp_path / "cxr"
    shutil.copytree(cxr_synth_root, root)
    first = root / pd.read_csv(root / "metadata.csv")["path"][0]
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    return root, first


def test_the_light_names_in_config_are_those_of_the_data_layer() -> None:
    from medcf import config_checks
    from medcf.data import verify

    assert tuple(ADAPTERS) == ADAPTER_NAMES and config_checks.BAD_FILE_POLICIES == verify.BAD_FILE_POLICIES


def test_data_check_names_the_broken_file_and_reports_what_training_reads(damaged_root, tmp_path, medcf_main) -> None:
    root, broken = damaged_root
    result = medcf_main("data", "check", root, "--adapter", "folder", "--out", tmp_path / "check", "--preview", "6")
    assert result.returncode == 1
    assert f"unreadable: {broken} (truncated or corrupt PNG" in result.stderr
    assert "error: 1 unreadable file(s), 0 prompt error(s)" in result.stderr
    summary = json.loads((tmp_path / "check" / "summary.json").read_text())
    assert [item["file"] for item in summary["unreadable_files"]] == [str(broken)]
    table = pd.read_csv(root / "metadata.csv")
    assert summary["images"] == len(table) and summary["patients"] == table["patient_id"].nunique()
    split = train_holdout(open_dataset("folder", root), 0.1, seed=0)  # what training with these defaults uses
    assert {name: counts["patients"] for name, counts in summary["splits"].items()} == {
        name: part.records["patient_id"].nunique() for name, part in split.items()
    }
    report = (tmp_path / "check" / "report.md").read_text()
    train = split["train"].records
    share = f"{int(train['pleural_effusion'].sum())} / {len(train)} ({100 * train['pleural_effusion'].mean():.1f}%)"
    assert f"| pleural_effusion | {share}, 0 unknown |" in report
    assert report.count("| cxr") >= 6 + 8  # six preview rows, eight prompt rows, each naming its image
    with Image.open(tmp_path / "check" / "preview.png") as preview:
        assert preview.width > 6 * 96  # six 96 px tiles side by side
    assert (tmp_path / "check" / "demographics.png").is_file() and (tmp_path / "check" / "index.html").is_file()


def test_data_check_of_a_sound_folder_exits_0_and_refuses_an_unknown_adapter(
    cxr_synth_root, tmp_path, medcf_main
) -> None:
    result = medcf_main("data", "check", cxr_synth_root, "--adapter", "folder", "--out", tmp_path / "ok")
    assert result.returncode == 0, result.stderr
    assert "All 48 image and mask files decode." in (tmp_path / "ok" / "report.md").read_text()
    unknown = medcf_main("data", "check", cxr_synth_root, "--adapter", "kaggle", "--out", tmp_path / "no")
    assert unknown.returncode == 1
    assert "error: adapter 'kaggle' unknown; use one of folder, chexpert" in unknown.stderr
    again = medcf_main("data", "check", cxr_synth_root, "--adapter", "folder", "--out", tmp_path / "ok")
    assert "folder is not empty; pass a new --out folder" in again.stderr  # a report is never overwritten


def test_training_refuses_or_skips_unreadable_images_with_the_same_split(damaged_root, cxr_synth_root) -> None:
    root, broken = damaged_root
    options = {"modality": "chest X-ray", "holdout_fraction": 0.25, "seed": 0}
    with pytest.raises(ValueError, match=rf"1 unreadable file\(s\): {broken} \(truncated.*data.bad_files=skip"):
        load_cohorts(root, bad_files="error", **options)
    with pytest.warns(UserWarning, match=rf"skipped 1 image\(s\) of 1 unreadable file\(s\): {broken}"):
        skipped = load_cohorts(root, bad_files="skip", **options)
    sound = load_cohorts(cxr_synth_root, bad_files="error", **options)
    for part in (TRAIN, HOLDOUT):  # the split does not depend on which files decode
        ids = set(sound[part].records["id"])
        assert set(skipped[part].records["id"]) == ids - {broken.stem}
    unchecked = load_cohorts(root, bad_files="unchecked", **options)
    assert sum(len(part) for part in unchecked.values()) == sum(len(part) for part in sound.values())


def test_a_split_column_is_honoured_and_checked(cxr_synth_root, tmp_path) -> None:
    table = pd.read_csv(cxr_synth_root / "metadata.csv")
    test_patients = set(table["patient_id"][:5])
    table["split"] = ["test" if patient in test_patients else "train" for patient in table["patient_id"]]
    root = tmp_path / "official"
    shutil.copytree(cxr_synth_root, root)
    table.to_csv(root / "metadata.csv", index=False)
    parts = load_cohorts(root, modality="chest X-ray", holdout_fraction=0.5, seed=0)  # the fraction gives way
    assert set(parts[HOLDOUT].records["patient_id"]) == test_patients
    assert set(parts[HOLDOUT].records["split"]) == {"test"}
    table.loc[0, "split"] = "dev"
    table.to_csv(root / "metadata.csv", index=False)
    with pytest.raises(ValueError, match=r"split column holds \['dev'\]"):
        load_cohorts(root, modality="chest X-ray", holdout_fraction=0.1, seed=0)


def test_config_checks_the_adapter_and_bad_file_policy_before_any_work(cxr_synth_root) -> None:
    check_paths(load_config(None, [f"data.root={cxr_synth_root}"]))
    with pytest.raises(ValueError, match="data.adapter='nhi' unknown; use one of folder, chexpert, mimic-cxr, nih"):
        check_paths(load_config(None, [f"data.root={cxr_synth_root}", "data.adapter=nhi"]))
    with pytest.raises(ValueError, match="data.bad_files='ignore' unknown; use one of error, skip, unchecked"):
        check_paths(load_config(None, [f"data.root={cxr_synth_root}", "data.bad_files=ignore"]))


def test_the_registry_reads_each_release_folder_as_its_adapter_does(chexpert_kaggle, nih_v2020, mimic_download):
    from medcf.data.adapters import chexpert, mimic_cxr, nih_chestxray14

    pairs = [
        (open_dataset("chexpert", chexpert_kaggle), chexpert(chexpert_kaggle / "train.csv")),
        (open_dataset("chexpert", chexpert_kaggle, table="valid.csv"), chexpert(chexpert_kaggle / "valid.csv")),
        (open_dataset("nih", nih_v2020.parent), nih_chestxray14(nih_v2020)),
        (open_dataset("mimic-cxr", mimic_download), mimic_cxr(mimic_download)),
    ]
    for through_registry, direct in pairs:
        pd.testing.assert_frame_equal(through_registry.records, direct.records)
    with pytest.raises(FileNotFoundError, match="no Data_Entry_2017_v2020.csv or Data_Entry_2017.csv or sample"):
        open_dataset("nih", chexpert_kaggle)


def test_data_check_on_a_release_uses_its_official_split(nih_v2020, tmp_path, medcf_main) -> None:
    result = medcf_main("data", "check", nih_v2020.parent, "--adapter", "nih", "--out", tmp_path / "nih")
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "nih" / "report.md").read_text()
    assert "Training would use the release's own split column" in report
    official = nih_chestxray14_split(nih_v2020)
    summary = json.loads((tmp_path / "nih" / "summary.json").read_text())
    assert summary["splits"]["train"]["images"] == official.count("train")
    assert summary["splits"]["holdout"]["images"] == official.count("test")


def nih_chestxray14_split(csv: Path) -> list[str]:
    from medcf.data.adapters import nih_chestxray14

    return list(nih_chestxray14(csv).records["split"])


def test_the_registry_reads_the_brain_cohorts_and_data_check_counts_their_sessions(
    oasis1_root, oasis2_root, oasis3_root, adni_root, tmp_path, medcf_main
) -> None:
    from medcf.data.adapters import adni, oasis1, oasis2, oasis3

    for name, root, read in (("oasis1", oasis1_root, oasis1), ("oasis2", oasis2_root, oasis2),
                             ("oasis3", oasis3_root, oasis3), ("adni", adni_root, adni)):  # fmt: skip
        pd.testing.assert_frame_equal(open_dataset(name, root).records, read(root).records)
    result = medcf_main("data", "check", oasis2_root, "--adapter", "oasis2", "--out", tmp_path / "check")
    assert result.returncode == 0, result.stderr
    cohort = oasis2(oasis2_root)
    summary = json.loads((tmp_path / "check" / "summary.json").read_text())
    assert sum(part["sessions"] for part in summary["splits"].values()) == cohort.records["session_id"].nunique()
    report = (tmp_path / "check" / "report.md").read_text()
    assert "| diagnosis |" in report and "session" not in report.split("## Prompts")[1].split("## Preview")[0]
