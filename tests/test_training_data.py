"""Training data order and checkpoints: deterministic batches, disjoint processes, exact resume, atomic saves."""

from __future__ import annotations

import errno
import itertools
import os
from pathlib import Path
from unittest.mock import patch

import pandas as pd
import pytest
import torch
import yaml
from accelerate import Accelerator

from medcf.evaluation.data import run_split
from medcf.training.checkpoint import LoopState, checkpoints, latest_checkpoint, resume, save_checkpoint
from medcf.training.data import (
    HOLDOUT,
    TRAIN,
    batch_stream,
    data_fingerprint,
    epoch_batches,
    load_cohorts,
    training_dataset,
)
from test_cli import medcf


def test_epoch_batches_are_deterministic_and_disjoint_across_processes() -> None:
    first = epoch_batches(103, 8, seed=3, epoch=2)
    assert first == epoch_batches(103, 8, seed=3, epoch=2)
    assert first != epoch_batches(103, 8, seed=3, epoch=3)  # a new order every epoch
    assert len(first) == 12 and all(len(batch) == 8 for batch in first)  # the ragged tail is dropped
    shards = [epoch_batches(103, 8, seed=3, epoch=2, process_index=rank, num_processes=3) for rank in range(3)]
    assert [len(shard) for shard in shards] == [4, 4, 4]  # equal counts keep DDP collectives in step
    seen = [index for shard in shards for batch in shard for index in batch]
    assert len(seen) == len(set(seen)) == 96


def test_too_few_images_for_the_processes_is_explained() -> None:
    with pytest.raises(ValueError, match="lower train.batch_size"):
        epoch_batches(10, 8, seed=0, epoch=0, num_processes=2)


def test_a_resumed_stream_continues_with_the_same_batches(cxr_synth_root: Path) -> None:
    cohorts = load_cohorts(cxr_synth_root, modality="chest X-ray", holdout_fraction=0.25, seed=0)
    dataset = training_dataset(cohorts[TRAIN], resolution=32, prompt_style="diverse", patient_info=True, seed=0)
    per_epoch = len(dataset) // 4
    uninterrupted = [batch["id"] for batch in itertools.islice(batch_stream(dataset, 4, seed=1), 2 * per_epoch + 1)]
    start = per_epoch + 2  # resume inside the second epoch
    resumed = [batch["id"] for batch in itertools.islice(batch_stream(dataset, 4, seed=1, start=start), per_epoch - 1)]
    assert resumed == uninterrupted[start:]


def test_holdout_patients_are_not_trained_on(cxr_synth_root: Path) -> None:
    cohorts = load_cohorts(cxr_synth_root, modality="chest X-ray", holdout_fraction=0.25, seed=0)
    train, holdout = (set(cohorts[name].records["patient_id"]) for name in (TRAIN, HOLDOUT))
    assert train and holdout and not train & holdout
    assert load_cohorts(cxr_synth_root, modality="chest X-ray", holdout_fraction=0, seed=0).keys() == {TRAIN}


def test_row_filter_and_its_errors(cxr_synth_root: Path) -> None:
    cohorts = load_cohorts(
        cxr_synth_root, modality="chest X-ray", row_filter="pleural_effusion == 1", holdout_fraction=0, seed=0
    )
    assert len(cohorts[TRAIN]) > 0 and (cohorts[TRAIN].records["pleural_effusion"] == 1).all()
    with pytest.raises(ValueError, match="keeps no rows"):
        load_cohorts(cxr_synth_root, modality="chest X-ray", row_filter="age > 500", holdout_fraction=0, seed=0)
    with pytest.raises(ValueError, match=r"data.filter='age >': expected a value .* at character 6"):
        load_cohorts(cxr_synth_root, modality="chest X-ray", row_filter="age >", holdout_fraction=0, seed=0)
    with pytest.raises(ValueError, match="unknown field 'effusion'; the table's columns are: id, patient_id"):
        load_cohorts(cxr_synth_root, modality="chest X-ray", row_filter="effusion == 1", holdout_fraction=0, seed=0)
    with pytest.raises(ValueError, match="data.root is empty"):
        load_cohorts("", modality="chest X-ray", holdout_fraction=0, seed=0)


def test_the_row_filter_grammar_selects_like_pandas_indexing(cxr_synth_root: Path) -> None:
    row_filter = 'pleural_effusion == 1 and sex in ["F"] or not (age >= 50 or smoking is missing)'
    cohort = load_cohorts(cxr_synth_root, modality="chest X-ray", row_filter=row_filter, holdout_fraction=0, seed=0)
    rows = load_cohorts(cxr_synth_root, modality="chest X-ray", holdout_fraction=0, seed=0)[TRAIN].records
    expected = ((rows.pleural_effusion == 1) & (rows.sex == "F")) | ((rows.age < 50) & rows.smoking.notna())
    assert 0 < len(cohort[TRAIN]) < len(rows)
    assert list(cohort[TRAIN].records["id"]) == list(rows[expected.fillna(False).astype(bool)]["id"])


def test_a_code_running_filter_is_refused_from_the_cli_and_from_a_saved_run(
    tmp_path: Path, cxr_synth_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exploit of the issue: pandas' eval ran `touch X` from data.filter; now nothing runs or is written."""
    exploit = (
        "smoking.str.replace('^.*$', \"__import__('os').system('touch X')\", regex=True)"
        ".apply(age.__class__.__init__.__globals__.get('__builtins__').get('exec')).isna()"
    )
    result = medcf("train", "--set", f"data.root={cxr_synth_root}", "--set", f"data.filter={exploit}", "--out", "run",
                   cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "data.filter=" in result.stderr and "unexpected '.' at character 8" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no X, no run folder
    run = tmp_path / "saved"  # a run folder's config.yaml is read back by the evaluation
    (run / "model").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"filter": exploit}}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="data.filter=.*unexpected '.'"):
        load_cohorts(cxr_synth_root, modality="chest X-ray", row_filter=run_split(run / "model").row_filter,
                     holdout_fraction=0.25, seed=0)  # fmt: skip
    assert not (tmp_path / "X").exists()


def test_data_fingerprint_changes_with_one_pixel(tmp_path: Path, cxr_synth_root: Path) -> None:
    cohort = load_cohorts(cxr_synth_root, modality="chest X-ray", holdout_fraction=0, seed=0)[TRAIN]
    before = data_fingerprint(cohort)
    assert before == data_fingerprint(cohort)
    image = Path(cohort.records["path"].iloc[0])
    original = image.read_bytes()
    try:
        image.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        assert data_fingerprint(cohort) != before
    finally:
        image.write_bytes(original)


def test_checkpoints_are_atomic_pruned_and_restore_the_loop_state(tmp_path: Path) -> None:
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model, optimizer = accelerator.prepare(model, optimizer)
    state = LoopState(seed=0, process_index=0)
    folder = tmp_path / "checkpoints"
    for step in (1, 2, 3):
        state.step, state.losses = step, [0.5] * step
        save_checkpoint(accelerator, folder, step, keep=2, resumable={"loop": state})
    assert [path.name for path in checkpoints(folder)] == ["step-0000002", "step-0000003"]
    (folder / "step-0000009.partial").mkdir()  # a save killed midway is never loaded
    assert latest_checkpoint(folder).name == "step-0000003"
    expected_noise = torch.randn(4, generator=state.generator)
    state.step, state.losses = 0, []
    assert resume(accelerator, folder, {"loop": state}) == latest_checkpoint(folder)
    assert (state.step, state.losses) == (3, [0.5] * 3)
    torch.testing.assert_close(torch.randn(4, generator=state.generator), expected_noise)


def test_a_disk_full_during_a_checkpoint_keeps_the_previous_one(tmp_path: Path) -> None:
    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(torch.nn.Linear(3, 2))
    folder = tmp_path / "checkpoints"
    previous = save_checkpoint(accelerator, folder, 1, resumable={})
    saved = {path.relative_to(previous): path.read_bytes() for path in previous.rglob("*") if path.is_file()}

    def disk_full(directory: str, **kwargs) -> None:
        (Path(directory) / "model.safetensors").write_bytes(b"half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with (
        patch.object(accelerator, "save_state", disk_full),
        pytest.raises(
            OSError, match=r"step-0000002: checkpoint not saved \(No space left on device\); step-0000001 is"
        ),
    ):
        model.weight.data += 1
        save_checkpoint(accelerator, folder, 2, resumable={})
    assert [path.name for path in folder.iterdir()] == ["step-0000001"]  # nothing half-written left behind
    assert {path.relative_to(previous): path.read_bytes() for path in previous.rglob("*") if path.is_file()} == saved
    assert latest_checkpoint(folder) == previous


def test_every_prompt_is_rendered_before_training_starts(tmp_path: Path, cxr_synth_root: Path) -> None:
    """A row that cannot become a prompt stops the run before step 0 and names its image; a brain cohort's
    cognitively normal subjects with an incidental lesion (the bug that stopped a brain run at step 0) render."""
    from medcf.data.synthetic import synthesize

    brain = synthesize("brain", tmp_path / "brain", n=40, size=32, seed=0, counterfactuals=False, progress=False)
    cohorts = load_cohorts(brain, modality="brain MRI", holdout_fraction=0.0, seed=0)
    rows = cohorts[TRAIN].records
    assert ((rows["diagnosis"] == "CN") & (rows["lesion"] == 1)).any()
    dataset = training_dataset(cohorts[TRAIN], resolution=32, prompt_style="simple", patient_info=True, seed=0)
    assert "lesion" in dataset.prompt(int(((rows["diagnosis"] == "CN") & (rows["lesion"] == 1)).argmax()))
    table = pd.read_csv(cxr_synth_root / "metadata.csv")
    table.assign(no_finding=1).to_csv(cxr_synth_root.parent / "no-finding.csv", index=False)  # and findings
    bad = load_cohorts(cxr_synth_root, csv="../no-finding.csv", modality="chest X-ray", holdout_fraction=0.0, seed=0)
    with pytest.raises(ValueError, match=r"^image cxr\d+ \(.*\): row marks no_finding=1 \(normal\) and \w+=1"):
        training_dataset(bad[TRAIN], resolution=32, prompt_style="simple", patient_info=True, seed=0)
