"""The best model of a run on val: kept in `best/` (written through a temporary folder), restored at the end."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from tipr.training.checkpoint import replace_folder

MARKER = "tipr_best.json"
logger = logging.getLogger(__name__)


class BestModel:
    """Tracks the best `key` metric; `state_dict` goes into checkpoints (JSON) so a resumed run keeps it."""

    def __init__(self, folder: str | os.PathLike, key: str = "R1"):
        self.folder, self.key = Path(folder), key
        self.score = -1.0
        self.metrics: dict[str, float] | None = None
        self.epoch: int | None = None
        self.step: int | None = None

    def state_dict(self) -> dict[str, Any]:
        return {self.key: self.score, "metrics": self.metrics, "epoch": self.epoch, "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.score, self.metrics = state[self.key], state["metrics"]
        self.epoch, self.step = state["epoch"], state["step"]

    def update(self, model: nn.Module, metrics: dict[str, float], *, epoch: int, step: int, save: bool) -> bool:
        """Record `metrics` if they beat the best so far, and (where `save`) write `model` to the folder."""
        if metrics[self.key] <= self.score:
            return False
        self.score, self.metrics, self.epoch, self.step = metrics[self.key], metrics, epoch, step
        if save:
            tmp = self.folder.with_name(f".{self.folder.name}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            model.save_pretrained(tmp)
            (tmp / MARKER).write_text(json.dumps({"step": step}))
            replace_folder(tmp, self.folder)
        return True

    def restore(self, model: nn.Module, final_step: int) -> bool:
        """Load the best weights into `model` unless the final model is the best; False when it stays as it is."""
        if self.step is None or self.step == final_step:
            return False
        marker = self.folder / MARKER
        if not marker.is_file() or json.loads(marker.read_text())["step"] != self.step:
            logger.warning("%s does not hold the best model of this run; the final model is the last one", marker)
            return False
        from tipr.models.weights import load_weights

        load_weights(model, self.folder, map_location=next(model.parameters()).device)
        logger.info("the final model is the best on val: epoch %s, step %s", self.epoch, self.step)
        return True
