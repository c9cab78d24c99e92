"""Training cost of each method: seconds per optimiser step, pairs per second, peak memory, ECCA's bank refresh.

The model, objective, partition, datasets and optimiser are built from the trainer's own flags
(``tipr.training.args``), on a real-shaped SynthPEDES at the requested image size; GEA reads its generated
images from a cache filled with placeholders (a train step's cost does not depend on what they show; making
them is a one-off job of ``python -m tipr.generate``). Batches are loaded before the clock starts, so the
figures are the model's: forward, losses, backward and the Adam step, after ``warmup_steps`` untimed steps.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from tipr.data import load_dataset
from tipr.evaluate import evaluate
from tipr.models.tipr_model import TIPRModel
from tipr.objectives import build_objective
from tipr.training.args import generation_options, model_kwargs, parse_args
from tipr.training.bank_refresh import refresh_bank
from tipr.training.data import build_train_data, make_partition
from tipr.training.optim import param_groups

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class StepCost:
    """What one method's training costs at one configuration."""

    method: str
    batch_size: int
    precision: str
    steps: int
    seconds_per_step: float
    pairs_per_second: float
    peak_memory_gib: float  # CUDA: peak allocated; CPU: the process's peak resident memory
    bank_seconds: float | None = None  # ECCA: one refresh of the whole-train-set feature bank
    bank_items: int | None = None  # images + captions that refresh encoded
    eval_seconds: float | None = None
    eval_queries: int | None = None

    def row(self) -> str:
        bank = f"{self.bank_seconds:.1f} s / {self.bank_items}" if self.bank_seconds is not None else "-"
        evals = f"{self.eval_seconds:.1f} s / {self.eval_queries}" if self.eval_seconds is not None else "-"
        return (f"| {self.method} | {self.batch_size} | {self.precision} | {self.seconds_per_step:.3f} | "
                f"{self.pairs_per_second:.1f} | {self.peak_memory_gib:.2f} | {bank} | {evals} |")


HEADER = ("| method | batch | precision | s / step | pairs / s | peak memory (GiB) | bank refresh (s / items) | "
          "evaluation (s / queries) |\n|---|---|---|---|---|---|---|---|")


def fill_placeholder_cache(generator: str | os.PathLike, cache_dir: str | os.PathLike, captions: Sequence[str],
                           size: tuple[int, int]) -> None:
    """Store one flat image per caption under the generator's cache keys (their content costs nothing to train)."""
    from PIL import Image

    from tipr.generation import GenerationCache, load_generator

    pipe = load_generator(generator)
    cache = GenerationCache(cache_dir)
    for caption in dict.fromkeys(captions):
        key = pipe.cache_key(caption)
        if cache.get(key) is None:
            shade = tuple(hashlib.sha256(caption.encode()).digest()[:3])
            cache.put(key, Image.new("RGB", (size[1], size[0]), shade))


def _peak_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return kib / (2**30 if sys.platform == "darwin" else 2**20)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_step_cost(argv: Sequence[str], *, steps: int = 2, warmup_steps: int = 1, precision: str = "fp32",
                      device: str = "cpu", evaluate_test: bool = False) -> StepCost:
    """Build what ``train/run.py argv`` builds, refresh ECCA's bank once, then time ``steps`` optimiser steps.

    ``argv`` needs --method, --dataset, --data_root (and --generator, --generation_cache for GEA); the
    batch size, backbone, image size and method options are the trainer's flags.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    args = parse_args(list(argv))
    dev = torch.device(device)
    dataset = load_dataset(args.dataset, args.data_root)
    partition = make_partition(dataset, setting=args.setting, seed=args.partition_seed, by=args.partition_by)
    torch.manual_seed(args.seed)
    model = TIPRModel(**model_kwargs(args)).to(dev)
    objective = build_objective(model, method=args.method, records=dataset.train, partition=partition,
                                supervised=args.supervised, loss=args.loss, cache_dir=None)
    generation = ({**generation_options(args), "device": dev, "progress": False} if objective.requires_generated
                  else None)
    data = build_train_data(dataset, partition, objective, model.backbone.tokenizer,
                            image_size=tuple(args.image_size), supervised=args.supervised, seed=args.seed,
                            eval_batch_size=args.eval_batch_size, generation=generation)
    needed = warmup_steps + steps
    loader = DataLoader(data.train, batch_size=args.train_batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(args.seed))
    batches: list = []
    while len(batches) < needed:  # small datasets: go round again
        batches += [b for b, _ in zip(loader, range(needed - len(batches)))]
        if not batches:
            raise ValueError(f"{len(data.train)} train pairs make no batch of {args.train_batch_size}; make the "
                             f"dataset larger or the batch smaller")
    batches = [{k: v.to(dev) if torch.is_tensor(v) else v for k, v in b.items()} for b in batches]

    autocast = (torch.autocast(dev.type, dtype=PRECISIONS[precision]) if PRECISIONS[precision] is not None
                else contextlib.nullcontext())
    bank_seconds = bank_items = None
    if objective.requires_bank:
        start = time.perf_counter()
        with autocast:
            refresh_bank(objective, model, *data.bank_loaders)
        _sync(dev)
        bank_seconds = time.perf_counter() - start
        bank_items = len(dataset.train_image_paths) + len(dataset.train)

    model.train()
    optimizer = torch.optim.Adam(param_groups(model, model.backbone, lr=args.learning_rate,
                                              head_lr_scale=args.head_lr_scale), lr=args.learning_rate)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    timed = 0.0
    for i, batch in enumerate(batches):
        _sync(dev)
        start = time.perf_counter()
        with autocast:
            losses = objective(model, batch)
        losses["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(dev)
        if i >= warmup_steps:
            timed += time.perf_counter() - start
    cost = StepCost(method=args.method, batch_size=args.train_batch_size, precision=precision, steps=steps,
                    seconds_per_step=timed / steps, pairs_per_second=steps * args.train_batch_size / timed,
                    peak_memory_gib=_peak_gib(dev), bank_seconds=bank_seconds, bank_items=bank_items)
    if evaluate_test:
        model.eval()
        start = time.perf_counter()
        with autocast:
            evaluate(model, dataset.test, batch_size=args.eval_batch_size, device=dev,
                     generated=data.generated["test"])
        cost.eval_seconds, cost.eval_queries = time.perf_counter() - start, dataset.test.num_captions
    return cost


def measure_in_child(argv: Sequence[str], **kwargs) -> StepCost:
    """``measure_step_cost`` in a fresh process, so that each method's peak memory is its own."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return StepCost(**pool.submit(_measure_as_dict, list(argv), **kwargs).result())


def _measure_as_dict(argv: list[str], **kwargs) -> dict:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    return asdict(measure_step_cost(argv, **kwargs))


def default_data_root(work_dir: str | os.PathLike, identities: int, image_size: tuple[int, int], seed: int = 0) -> Path:
    """A CUHK-PEDES-shaped SynthPEDES under ``work_dir`` (made once per size and identity count)."""
    from tipr.data.synthetic import generate_synthpedes

    out = Path(work_dir) / f"synth-cuhk-{identities}-{image_size[0]}x{image_size[1]}-{seed}"
    if not (out / "CUHK-PEDES" / "reid_raw.json").is_file():
        generate_synthpedes(out, identities=identities, seed=seed, image_size=image_size, workers=1,
                            profile="cuhk-pedes", overwrite=True)
    return out
