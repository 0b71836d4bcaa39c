"""Resuming never runs code from a run folder, and a damaged newest checkpoint falls back to the one before it."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel

from medcf.training import train
from medcf.training.checkpoint import LoopState, checkpoints
from medcf.training.resumable import STATE_JSON, STATE_TENSORS, load_resumable, save_resumable
from test_training_loop import tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Planted:
    """A pickle whose loading would create a file: what a crafted checkpoint holds."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, cxr_synth_root: Path) -> Path:
    folder = tmp_path_factory.mktemp("runs") / "run"
    train(tiny_config(cxr_synth_root, "train.max_steps=4", "train.checkpoint_every=2", "train.ema_decay=0.9"),
          folder, progress=False)  # fmt: skip
    return folder


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def _resume(folder: Path, cxr_synth_root: Path) -> None:
    config = tiny_config(cxr_synth_root, "train.max_steps=5", "train.checkpoint_every=2", "train.ema_decay=0.9")
    train(config, folder, progress=False)


def test_checkpoints_hold_no_pickle_of_medcf_state(run: Path) -> None:
    for checkpoint in checkpoints(run / "checkpoints"):
        names = {path.name for path in checkpoint.iterdir()}
        assert {STATE_JSON, STATE_TENSORS} <= names and not any(name.startswith("custom_checkpoint") for name in names)


def test_resumable_state_round_trips_without_pickle(tmp_path: Path) -> None:
    parameters = [torch.nn.Parameter(torch.randn(3, 2))]
    optimizer = torch.optim.AdamW(parameters, lr=1e-3)
    objects = {"lr_scheduler": get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=5),
               "loop": LoopState(7, 0), "ema": EMAModel(parameters, decay=0.9)}  # fmt: skip
    objects["loop"].step, objects["loop"].losses = 12, [0.5, 0.25]
    objects["loop"].generator.manual_seed(99)
    objects["ema"].step(parameters)
    objects["lr_scheduler"].step()
    save_resumable(tmp_path, objects)
    fresh = {"lr_scheduler": get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=5),
             "loop": LoopState(0, 0), "ema": EMAModel([torch.nn.Parameter(torch.zeros(3, 2))], decay=0.5)}  # fmt: skip
    load_resumable(tmp_path, fresh)
    assert fresh["loop"].step == 12 and fresh["loop"].losses == [0.5, 0.25]
    assert torch.equal(fresh["loop"].generator.get_state(), objects["loop"].generator.get_state())
    assert fresh["ema"].decay == 0.9 and fresh["ema"].optimization_step == 1
    torch.testing.assert_close(fresh["ema"].shadow_params[0], objects["ema"].shadow_params[0])
    assert fresh["lr_scheduler"].state_dict() == objects["lr_scheduler"].state_dict()


@pytest.mark.parametrize("planted", ["optimizer.bin", "custom_checkpoint_0.pkl"])
def test_a_planted_pickle_is_refused_and_runs_nothing(
    run: Path, tmp_path: Path, cxr_synth_root: Path, planted: str
) -> None:
    folder = _copy(run, tmp_path)
    newest = checkpoints(folder / "checkpoints")[-1]
    marker = tmp_path / "code-ran"
    if planted.startswith("custom_checkpoint"):  # an earlier medcf's layout: its pickles instead of ours
        (newest / STATE_JSON).unlink()
    (newest / planted).write_bytes(pickle.dumps(Planted(marker)))
    with pytest.raises(ValueError, match="refused: .* could run code"):
        _resume(folder, cxr_synth_root)
    assert not marker.exists()


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous(
    run: Path, tmp_path: Path, cxr_synth_root: Path
) -> None:
    folder = _copy(run, tmp_path)
    previous, newest = checkpoints(folder / "checkpoints")[-2:]
    weights = next(newest.glob("model*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.warns(UserWarning, match=f"{newest.name}: damaged .*trying the checkpoint before it"):
        _resume(folder, cxr_synth_root)
    sessions = (folder / "manifest.json").read_text()
    assert f'"resumed_from": "{previous.name}"' in sessions


def test_every_checkpoint_damaged_is_an_error_not_a_fresh_start(
    run: Path, tmp_path: Path, cxr_synth_root: Path
) -> None:
    folder = _copy(run, tmp_path)
    for checkpoint in checkpoints(folder / "checkpoints"):
        (checkpoint / STATE_TENSORS).write_bytes(b"\0" * 10)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="every checkpoint is damaged"):
        _resume(folder, cxr_synth_root)


def test_an_earlier_medcfs_pickled_checkpoint_is_named_not_loaded(run: Path, tmp_path: Path, cxr_synth_root) -> None:
    folder = _copy(run, tmp_path)
    for checkpoint in checkpoints(folder / "checkpoints"):
        torch.save({"step": 2, "losses": [0.1]}, checkpoint / "custom_checkpoint_0.pkl")  # plain data, no code
    with pytest.raises(ValueError, match="a checkpoint of an earlier medcf .* delete .*checkpoints to start over"):
        _resume(folder, cxr_synth_root)
