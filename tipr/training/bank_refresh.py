"""When ECCA's feature bank is rebuilt during training, and a record of what each rebuild encoded."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


class BankSchedule:
    """The bank is rebuilt at the start of every `every`-th epoch, and whenever a process has none yet.

    A run resumed inside a bank period (an epoch not divisible by `every`, or mid-epoch) has no bank: it is
    rebuilt from the resumed weights, which an uninterrupted run did not do (`exact` says so).
    """

    def __init__(self, every: int):
        if every < 1:
            raise ValueError(f"the bank refresh period must be >= 1 epoch, got {every}")
        self.every = every
        self.last: int | None = None  # the epoch of the last rebuild in this process

    def due(self, epoch: int) -> bool:
        """Whether the bank must be rebuilt before training `epoch`."""
        return self.last is None or epoch % self.every == 0

    def exact(self, epoch: int, *, resumed_mid_epoch: bool = False) -> bool:
        """Whether a rebuild before `epoch` is one an uninterrupted run makes too (same weights, same point)."""
        return epoch % self.every == 0 and not resumed_mid_epoch

    def mark(self, epoch: int) -> None:
        self.last = epoch


def coverage_report(counts: torch.Tensor) -> dict:
    """How often each index was encoded: every one exactly once is a complete, duplicate-free bank."""
    missing = torch.nonzero(counts == 0).flatten()
    repeated = torch.nonzero(counts > 1).flatten()
    return {"total": len(counts), "covered_once": int((counts == 1).sum()), "missing": len(missing),
            "repeated": len(repeated), "examples_missing": missing[:10].tolist(),
            "examples_repeated": repeated[:10].tolist()}


def refresh_bank(objective, model, image_loader: Iterable[Mapping], text_loader: Iterable[Mapping], *,
                 gather: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, dict]:
    """Rebuild the objective's feature bank; the coverage of its images and texts (`coverage_report`)."""
    objective.refresh(model, image_loader=image_loader, text_loader=text_loader, gather=gather)
    counts = objective.bank.coverage()
    return {"images": coverage_report(counts["image"]), "texts": coverage_report(counts["text"])}


class BankRefresher:
    """Rebuilds `objective`'s feature bank before the epochs `schedule` names; times it and records coverage."""

    def __init__(self, objective, image_loader: Iterable[Mapping], text_loader: Iterable[Mapping],
                 schedule: BankSchedule, *, coverage_file: str | os.PathLike | None = None):
        self.objective, self.loaders, self.schedule = objective, (image_loader, text_loader), schedule
        self.coverage_file = None if coverage_file is None else Path(coverage_file)
        self.seconds, self.refreshes = 0.0, 0

    def before_epoch(self, model, epoch: int, *, accelerator, global_step: int,
                     resumed_mid_epoch: bool = False) -> bool:
        """Rebuild the bank if it is due (on every rank); whether it was rebuilt."""
        if not self.schedule.due(epoch):
            return False
        if not self.schedule.exact(epoch, resumed_mid_epoch=resumed_mid_epoch):
            logger.warning("resumed inside a bank period: ECCA's feature bank is rebuilt from the resumed weights, "
                           "so the run is not bitwise identical to an uninterrupted one")
        start = time.perf_counter()
        with accelerator.autocast():
            coverage = refresh_bank(self.objective, model, *self.loaders, gather=accelerator.gather_for_metrics)
        self.schedule.mark(epoch)
        self.seconds += time.perf_counter() - start
        self.refreshes += 1
        if self.coverage_file is not None and accelerator.is_main_process:
            self.coverage_file.write_text(json.dumps({"epoch": epoch, "global_step": global_step,
                                                      "world_size": accelerator.num_processes, **coverage}, indent=1))
        return True
