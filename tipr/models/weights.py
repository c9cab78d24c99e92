"""A tipr model's weight files in the Hub's layout: one `model.safetensors`, or shards named by an index.

Large models (and the demo model, under a Space's 10 MB file limit) are split into
`model-0000k-of-0000n.safetensors` + `model.safetensors.index.json`, huggingface_hub's own layout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
HUB_MAX_SHARD_SIZE = "5GB"  # huggingface_hub's default: a trainer's model stays one file
WEIGHT_PATTERNS = [SINGLE_FILE, "model-*-of-*.safetensors", INDEX_FILE]  # Hub uploads and downloads
LAYOUT = f"{SINGLE_FILE}, or {INDEX_FILE} and the shards it names"


def has_weights(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds tipr weights in either layout (the files are checked by `weight_files`)."""
    folder = Path(folder)
    return (folder / SINGLE_FILE).is_file() or (folder / INDEX_FILE).is_file()


def weight_files(folder: str | os.PathLike) -> list[Path]:
    """The weight files of `folder`: its model.safetensors, or every shard its index names (all present)."""
    folder = Path(folder)
    if (folder / SINGLE_FILE).is_file():
        return [folder / SINGLE_FILE]
    if not (folder / INDEX_FILE).is_file():
        raise FileNotFoundError(f"{folder} holds no model weights (expected {LAYOUT}); pass a tipr model folder "
                                "saved by train/run.py")
    try:
        names = sorted(set(json.loads((folder / INDEX_FILE).read_text())["weight_map"].values()))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{folder / INDEX_FILE} is not a weight index ({err!r}); save or download the model "
                         "again") from err
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}, named by {INDEX_FILE}; copy or download "
                                "every shard of the model (or save it again)")
    return [folder / name for name in names]


def check_safetensors(path: Path) -> None:
    """Raise ValueError naming `path` when it is not a readable safetensors file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception as err:  # safetensors raises its own SafetensorError for a cut or corrupt file
        raise ValueError(f"{path} is corrupt or cut short ({err}); save or download the model again") from err


def checked_weight_files(folder: str | os.PathLike) -> list[Path]:
    """`weight_files`, each one checked to be a whole safetensors file."""
    files = weight_files(folder)
    for path in files:
        check_safetensors(path)
    return files


def save_weights(model: nn.Module, folder: str | os.PathLike, *,
                 max_shard_size: int | str = HUB_MAX_SHARD_SIZE) -> list[Path]:
    """Write `model`'s weights into `folder` (stale files of either layout removed); returns the files written."""
    from huggingface_hub import save_torch_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_torch_model(model, folder, max_shard_size=max_shard_size)
    return weight_files(folder)


def load_weights(model: nn.Module, folder: str | os.PathLike, *, strict: bool = True,
                 map_location: str | torch.device = "cpu") -> nn.Module:
    """Load the weights of `folder` (either layout) into `model`, then move it to `map_location`."""
    from huggingface_hub import load_torch_model

    checked_weight_files(folder)
    result = load_torch_model(model, folder, strict=False, map_location=map_location)
    missing = sorted(set(result.missing_keys) - _tied_names(model, set(result.missing_keys)))
    if strict and (missing or result.unexpected_keys):
        raise ValueError(f"the weights in {folder} do not fit this model: missing {missing[:5]}, unexpected "
                         f"{sorted(result.unexpected_keys)[:5]}; its config.json and weights belong to different "
                         "models")
    return model.to(map_location)


def read_weights(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of `folder`'s weights (either layout) by name, on CPU."""
    from safetensors.torch import load_file

    return {name: tensor for path in checked_weight_files(folder) for name, tensor in load_file(str(path)).items()}


def reshard(folder: str | os.PathLike, max_shard_size: int | str) -> list[Path]:
    """Save `folder`'s weights again in shards of at most `max_shard_size` (dtypes kept); returns the files."""
    from huggingface_hub import save_torch_state_dict

    save_torch_state_dict(read_weights(folder), folder, max_shard_size=max_shard_size)
    return weight_files(folder)


def _tied_names(model: nn.Module, missing: set[str]) -> set[str]:
    """Missing names whose memory is shared with a loaded tensor: saving keeps one name of each such group."""
    groups: dict[tuple, list[str]] = {}
    for name, tensor in model.state_dict().items():
        groups.setdefault((tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(),
                           tuple(tensor.shape)), []).append(name)
    return {name for names in groups.values() if any(n not in missing for n in names) for name in names}
