"""An exponential moving average of weights in a checkpoint as safetensors + JSON.

accelerate's `register_for_checkpointing` pickles a registered object's state and loads it with
`weights_only=False`; checkpoints here hold only safetensors and JSON, so the EMA travels through save/load
hooks instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

WEIGHTS, STATE = "ema.safetensors", "ema.json"


def save_ema(ema, folder: str | os.PathLike) -> None:
    """Write `ema`'s shadow weights (`ema.safetensors`) and its counters (`ema.json`) into `folder`."""
    from safetensors.torch import save_file

    state = ema.state_dict()
    shadow = state.pop("shadow_params")
    folder = Path(folder)
    save_file({f"{i}": p.detach().contiguous().cpu() for i, p in enumerate(shadow)}, str(folder / WEIGHTS))
    (folder / STATE).write_text(json.dumps(state, indent=1))


def load_ema(ema, folder: str | os.PathLike) -> None:
    """Restore what `save_ema` wrote into `ema` (its weights keep their device and dtype)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    tensors = load_file(str(folder / WEIGHTS))
    if len(tensors) != len(ema.shadow_params):
        raise ValueError(f"{folder / WEIGHTS} holds {len(tensors)} weights, the EMA has {len(ema.shadow_params)}")
    shadow = [tensors[f"{i}"].to(p.device, p.dtype) for i, p in enumerate(ema.shadow_params)]
    ema.load_state_dict(json.loads((folder / STATE).read_text()) | {"shadow_params": shadow})


def checkpoint_ema(accelerator, ema) -> None:
    """Save and restore `ema` with every `accelerator.save_state` / `load_state` (written by the main process)."""

    def save(models, weights, output_dir):
        if accelerator.is_main_process:
            save_ema(ema, output_dir)

    def load(models, input_dir):
        load_ema(ema, input_dir)

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)

