"""medcf's own resumable state (LR schedule, loop state, EMA) as safetensors + JSON: no pickle is ever loaded.

accelerate pickles the objects given to `register_for_checkpointing` (`custom_checkpoint_N.pkl`) and loads them
with `torch.load(weights_only=False)`, which runs whatever code a crafted file holds; a run folder is shared like
any other file, so medcf registers nothing and writes these state dicts itself: every tensor into
`medcf_state.safetensors`, everything else (numbers, strings, lists, dicts) into `medcf_state.json`. The rest
of an accelerate checkpoint (weights as safetensors; optimizer and RNG states) accelerate loads with
`weights_only=True`, which refuses code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors.torch import load_file, save_file

STATE_JSON = "medcf_state.json"
STATE_TENSORS = "medcf_state.safetensors"


class Stateful(Protocol):
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


def save_resumable(folder: Path, objects: Mapping[str, Stateful | None]) -> None:
    """Write the state dicts of `objects` (None entries skipped) into `folder`."""
    tensors: dict[str, torch.Tensor] = {}
    tree = {name: _split(obj.state_dict(), tensors, name) for name, obj in objects.items() if obj is not None}
    save_file(tensors, str(folder / STATE_TENSORS))
    (folder / STATE_JSON).write_text(json.dumps(tree) + "\n")


def load_resumable(folder: Path, objects: Mapping[str, Stateful | None]) -> None:
    """Restore `objects` from the files `save_resumable` wrote in `folder`."""
    tree, tensors = json.loads((folder / STATE_JSON).read_text()), load_file(str(folder / STATE_TENSORS))
    for name, obj in objects.items():
        if obj is not None:
            if name not in tree:
                raise ValueError(f"{folder}: holds no {name} state; resume with the settings the run started with")
            obj.load_state_dict(_join(tree[name], tensors))


def _split(value: Any, tensors: dict[str, torch.Tensor], path: str) -> dict:
    """A JSON node for `value`, its tensors moved into `tensors` under their path."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().cpu().contiguous()
        return {"tensor": path}
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise TypeError(f"{path}: state dict keys must be strings to be written as JSON")
        return {"dict": {key: _split(item, tensors, f"{path}.{key}") for key, item in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"list": [_split(item, tensors, f"{path}.{index}") for index, item in enumerate(value)]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    raise TypeError(f"{path}: {type(value).__name__} cannot be saved without pickle")


def _join(node: dict, tensors: dict[str, torch.Tensor]) -> Any:
    ((kind, content),) = node.items()
    if kind == "tensor":
        return tensors[content]
    if kind == "dict":
        return {key: _join(item, tensors) for key, item in content.items()}
    if kind == "list":
        return [_join(item, tensors) for item in content]
    return content
