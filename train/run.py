#!/usr/bin/env python
"""Train a text-to-image person retrieval model with Accelerate: ECCA, GEA, ECCA+GEA or the CLIP baseline.

    accelerate launch train/run.py --method ecca --dataset cuhk-pedes --data_root data/ --setting medium \\
        --output_dir outputs/ecca-cuhk-medium
    accelerate launch train/run.py --preset tiny --method gea --dataset synthpedes --data_root synth/CUHK-PEDES \\
        --output_dir outputs/tiny-gea --cpu

Every option is a flag (see --help); --config file.yaml sets them too, and flags on the command line win.
See docs/training.md for one GPU, several GPUs and several machines, resuming and pushing to the Hub.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import tipr  # noqa: F401  (repairs torchvision before accelerate, diffusers or open_clip import it)

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import gather_object, set_seed
from diffusers.optimization import get_scheduler
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from tipr.data import load_dataset
from tipr.data.text_context import report_long_captions
from tipr.evaluate import evaluate
from tipr.hub import HubUnreachableError
from tipr.metrics import format_table
from tipr.models.tipr_model import TIPRModel
from tipr.objectives import build_objective
from tipr.training.args import accelerator_kwargs, generation_options, model_kwargs, parse_args
from tipr.training.bank_refresh import BankRefresher, BankSchedule
from tipr.training.best_model import BestModel
from tipr.training.checkpoint import CheckpointError, prepare_output_dir, resolve_checkpoint, save_checkpoint
from tipr.training.data import build_train_data, make_partition
from tipr.training.hub_push import push_folder, warn_if_unreachable
from tipr.training.model_card import public_path, write_model_card
from tipr.training.optim import default_warmup_steps, param_groups
from tipr.training.state import TrainingState, resume

logger = get_logger(__name__, log_level="INFO")


class TrainStep(nn.Module):
    """The model and its objective as one module, so that DDP and autocast see the whole training forward."""

    def __init__(self, model: TIPRModel, objective):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: Mapping) -> dict[str, torch.Tensor]:
        return self.objective(self.model, batch)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(**accelerator_kwargs(args))
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%H:%M:%S",
                        level=logging.WARNING)  # this script's logger says INFO; libraries only warnings
    logger.info(accelerator.state, main_process_only=False)
    if args.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
    set_seed(args.seed)
    if accelerator.is_main_process:
        prepare_output_dir(output_dir)
        if args.push_to_hub:
            warn_if_unreachable(output_dir)
    accelerator.wait_for_everyone()

    # ------------------------------------------------------------------------------------------------ data
    dataset = load_dataset(args.dataset, args.data_root, skip_missing_images=args.skip_missing_images)
    partition = make_partition(dataset, setting=args.setting, seed=args.partition_seed, by=args.partition_by,
                               file=args.partition_file)
    if accelerator.is_main_process:
        logger.info("%s\n  partition %s: %s", dataset.summary(), partition.setting,
                    {m.name: c for m, c in partition.counts().items()})
        partition.save(output_dir / "partition.json")
    model = TIPRModel(**model_kwargs(args))
    if accelerator.is_main_process:
        report_long_captions(model.backbone.tokenizer, dataset.all_captions(), dataset.name)
    with accelerator.main_process_first():  # ECCA writes its noun-phrase cache once
        objective = build_objective(model, method=args.method, records=dataset.train, partition=partition,
                                    supervised=args.supervised, loss=args.loss, cache_dir=output_dir / "cache",
                                    oracle_neighbours=args.oracle_neighbours)
    generation = generation_options(args, accelerator) if objective.requires_generated else None
    data = build_train_data(dataset, partition, objective, model.backbone.tokenizer,
                            image_size=tuple(args.image_size), supervised=args.supervised, seed=args.seed,
                            eval_batch_size=args.eval_batch_size, num_workers=args.dataloader_num_workers,
                            generation=generation)
    train_dataloader = DataLoader(data.train, batch_size=args.train_batch_size, shuffle=True, drop_last=True,
                                  num_workers=args.dataloader_num_workers)

    # ------------------------------------------------------------------------------------ optimisation
    step_module = TrainStep(model, objective)
    optimizer = torch.optim.Adam(
        param_groups(step_module, model.backbone, lr=args.learning_rate, head_lr_scale=args.head_lr_scale),
        lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon,
        weight_decay=args.adam_weight_decay)
    step_module, optimizer, train_dataloader = accelerator.prepare(step_module, optimizer, train_dataloader)
    if len(train_dataloader) == 0:
        raise SystemExit(f"error: {len(data.train)} train pairs make no full batch of {args.train_batch_size} per "
                         f"process on {accelerator.num_processes} process(es); lower --train_batch_size")
    updates_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * updates_per_epoch
    num_epochs = math.ceil(max_train_steps / updates_per_epoch)
    warmup = default_warmup_steps(updates_per_epoch, max_train_steps) if args.lr_warmup_steps is None \
        else args.lr_warmup_steps
    # the prepared scheduler steps once per process per update (diffusers' convention)
    lr_scheduler = accelerator.prepare(get_scheduler(
        args.lr_scheduler, optimizer.optimizer, num_warmup_steps=warmup * accelerator.num_processes,
        num_training_steps=max_train_steps * accelerator.num_processes))
    bank = BankRefresher(objective, *map(accelerator.prepare_data_loader, data.bank_loaders),
                         BankSchedule(model.ecca_config.bank_refresh_epochs),
                         coverage_file=output_dir / "bank_coverage.json") if objective.requires_bank else None
    unwrapped = accelerator.unwrap_model(step_module).model
    if accelerator.is_main_process:
        accelerator.init_trackers(args.tracker_project_name, config=tracker_config(args))

    # --------------------------------------------------------------------------------------- resume
    state = TrainingState(world_size=accelerator.num_processes, train_batch_size=args.train_batch_size,
                          gradient_accumulation_steps=args.gradient_accumulation_steps, seed=args.seed,
                          method=args.method.value)
    best = BestModel(output_dir / "best")
    first_epoch = skip_batches = 0
    if args.resume_from_checkpoint:
        try:
            saved = resume(accelerator, args.resume_from_checkpoint, output_dir, state)
        except CheckpointError as err:
            raise SystemExit(f"error: {err}") from None
        if saved is not None:
            state.global_step = saved.global_step
            best.load_state_dict(saved.best)
            first_epoch, skip_batches = saved.resume_point(len(train_dataloader))
            if bank is not None and bank.load(resolve_checkpoint(args.resume_from_checkpoint, output_dir)):
                logger.info("restored ECCA's feature bank of epoch %d from the checkpoint", bank.schedule.last)

    logger.info("***** training %s *****\n  pairs = %d, epochs = %d, updates per epoch = %d, total updates = %d\n"
                "  batch per device = %d, processes = %d, accumulation = %d, warm-up = %d", args.method,
                len(data.train), num_epochs, updates_per_epoch, max_train_steps, args.train_batch_size,
                accelerator.num_processes, args.gradient_accumulation_steps, warmup)
    progress = tqdm(range(max_train_steps), initial=state.global_step, desc="steps",
                    disable=not accelerator.is_main_process)
    train_seconds = 0.0
    last_validated = -1

    def checkpoint(epoch: int, batches_done: int) -> None:
        state.epoch, state.batches_done, state.best = epoch, batches_done, best.state_dict()
        logger.info("saved %s", save_checkpoint(accelerator, output_dir, state.global_step, state.to_dict(),
                                                total_limit=args.checkpoints_total_limit,
                                                extra=bank.save if bank is not None else None))

    def validate(epoch: int) -> None:
        nonlocal last_validated
        metrics = evaluate_split(unwrapped, dataset.val, data.generated["val"], args, accelerator)
        last_validated = state.global_step
        accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=state.global_step)
        best.update(unwrapped, metrics, epoch=epoch + 1, step=state.global_step, save=accelerator.is_main_process)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            progress.write(format_table({f"val epoch {epoch + 1} (step {state.global_step})": metrics}))

    # ------------------------------------------------------------------------------------ the loop
    for epoch in range(first_epoch, num_epochs):
        if state.global_step >= max_train_steps:
            break
        step_module.train()
        if bank is not None:
            bank.before_epoch(unwrapped, epoch, accelerator=accelerator, global_step=state.global_step,
                              resumed_mid_epoch=bool(skip_batches))
        data.train.set_epoch(epoch)
        objective.set_epoch(epoch)
        train_dataloader.set_epoch(epoch)
        loader, batches_done = train_dataloader, 0
        if epoch == first_epoch and skip_batches:
            loader, batches_done = accelerator.skip_first_batches(train_dataloader, skip_batches), skip_batches
            loader.set_epoch(epoch)
        pending_checkpoint = False
        epoch_start = time.perf_counter()
        for batch in loader:
            with accelerator.accumulate(step_module):
                losses = step_module(batch)
                accelerator.backward(losses["loss"])
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(step_module.parameters(), args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            batches_done += 1
            if accelerator.sync_gradients:
                state.global_step += 1
                progress.update(1)
                logs = {k: float(v.detach()) for k, v in losses.items()} | {"lr": lr_scheduler.get_last_lr()[0]}
                progress.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{logs['lr']:.2e}")
                accelerator.log({f"train/{k}": v for k, v in logs.items()}, step=state.global_step)
                if state.global_step % args.checkpointing_steps == 0:
                    if batches_done == len(train_dataloader):
                        pending_checkpoint = True  # after this epoch's validation, which the state then includes
                    else:
                        checkpoint(epoch, batches_done)
                if state.global_step >= max_train_steps:
                    break
        train_seconds += time.perf_counter() - epoch_start
        last_epoch = state.global_step >= max_train_steps or epoch == num_epochs - 1
        if args.validation_epochs and ((epoch + 1) % args.validation_epochs == 0 or last_epoch):
            validate(epoch)
        if pending_checkpoint:
            checkpoint(epoch, batches_done)

    # ---------------------------------------------------------------------------------- the end
    progress.close()
    if args.validation_epochs and last_validated != state.global_step and state.global_step > 0:
        validate(num_epochs - 1)
    accelerator.wait_for_everyone()
    best.restore(unwrapped, state.global_step)
    results = {}
    if best.metrics is not None:
        results[f"val (best: epoch {best.epoch}, step {best.step})"] = best.metrics
    if args.eval_test:
        results["test"] = evaluate_split(unwrapped, dataset.test, data.generated["test"], args, accelerator)
        accelerator.log({f"test/{k}": v for k, v in results["test"].items()}, step=state.global_step)
    digests = gather_object([parameter_digest(unwrapped)])
    if accelerator.is_main_process:
        # wall time of the training loop plus bank refreshes (no evaluation, no checkpoints), for speed ratios
        bank_seconds = bank.seconds if bank else 0.0
        save_model(unwrapped, args, partition.setting, results, {
            "results": results, "global_step": state.global_step, "epochs": num_epochs,
            "epochs_trained": state.global_step / updates_per_epoch, "train_seconds": train_seconds + bank_seconds,
            "bank_seconds": bank_seconds, "bank_refreshes": bank.refreshes if bank else 0,
            "world_size": accelerator.num_processes, "parameter_digests": digests,
            "best": {"epoch": best.epoch, "step": best.step, "R1": best.score}})
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if args.push_to_hub and accelerator.is_main_process:
        url = push_folder(output_dir, args.hub_model_id, token=args.hub_token, private=args.hub_private_repo,
                          commit_message=f"tipr {args.method} on {args.dataset} ({args.setting})")
        logger.info("pushed to %s", url)
    return results


def evaluate_split(model: TIPRModel, split, generated, args, accelerator) -> dict[str, float]:
    """R1/R5/R10/mAP/mINP on `split`, sharded over the processes; GIF re-ranking with --eval_rerank."""
    rerank_top_k = model.gea_config.rerank_top_k if args.eval_rerank and model.gea_config else 0
    return evaluate(model, split, batch_size=args.eval_batch_size, device=accelerator.device, generated=generated,
                    rerank_top_k=rerank_top_k, accelerator=accelerator, num_workers=args.dataloader_num_workers)


def save_model(model: TIPRModel, args, setting: str, results: dict, summary: dict) -> None:
    """The model folder: config.json + its weights, a model card and results.json (main process)."""
    output_dir = Path(args.output_dir)
    model.save_pretrained(output_dir)
    hyper = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
             if k not in ("hub_token", "config")}
    write_model_card(output_dir, method=args.method, dataset=args.dataset, setting=setting, hyperparameters=hyper,
                     results=results,
                     base_model=None if args.pretrained is None else f"{args.model_name} ({public_path(args.pretrained)})")
    (output_dir / "results.json").write_text(json.dumps(summary, indent=1))
    if results:
        print(format_table(results), flush=True)
    logger.info("saved the model to %s (config.json, weights, README.md)", output_dir)


def tracker_config(args) -> dict:
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in vars(args).items()}


def parameter_digest(model: nn.Module) -> str:
    """sha256 of every parameter's bytes: equal on every rank when they trained in sync."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


if __name__ == "__main__":
    try:
        main()
    except HubUnreachableError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
