"""Where a training run is: saved (as JSON) with every checkpoint, and the rules for resuming from it."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from typing import Any

from tipr.training.checkpoint import load_checkpoint, resolve_checkpoint

logger = logging.getLogger(__name__)

# settings that change which batches a run sees: a resumed run warns when they differ from the saved run's
BATCH_SETTINGS = ("world_size", "train_batch_size", "gradient_accumulation_steps")


@dataclass
class TrainingState:
    """Optimiser steps done, the epoch and the batches of it done, the best val result, and the batch settings."""

    global_step: int = 0
    epoch: int = 0
    batches_done: int = 0
    best: dict[str, Any] | None = None
    world_size: int = 1
    train_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    seed: int = 0
    method: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingState:
        """From a checkpoint's saved state; keys this version does not know are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def resume_point(self, batches_per_epoch: int) -> tuple[int, int]:
        """(epoch to continue, batches of it to skip): a finished epoch continues with the next one."""
        if self.batches_done >= batches_per_epoch:
            return self.epoch + 1, 0
        return self.epoch, self.batches_done

    def batch_changes(self, now: TrainingState) -> list[str]:
        """What differs from `now` in the settings that decide the batches, one sentence each."""
        return [f"{name} was {getattr(self, name)} and is now {getattr(now, name)}" for name in BATCH_SETTINGS
                if getattr(self, name) != getattr(now, name)]


def resume(accelerator, spec: str, output_dir: str | os.PathLike, now: TrainingState) -> TrainingState | None:
    """Restore the checkpoint `--resume_from_checkpoint spec` names; its state, or None when there is none yet.

    Raises CheckpointError for a damaged checkpoint; warns when the batch settings changed since it was saved.
    """
    path = resolve_checkpoint(spec, output_dir)
    if path is None:
        logger.info("no checkpoint in %s yet; starting a new run", output_dir)
        return None
    saved = TrainingState.from_dict(load_checkpoint(accelerator, path))
    logger.info("resumed from %s at step %d", path, saved.global_step)
    for change in saved.batch_changes(now):
        logger.warning("%s: the run continues, but not with the batches an uninterrupted run would have seen", change)
    return saved
