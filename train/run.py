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

import json
import logging
import math
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import tipr  # noqa: F401  (repairs torchvision before accelerate, diffusers or open_clip import it)

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import (DataLoaderConfiguration, DistributedDataParallelKwargs, ProjectConfiguration,
                              gather_object, set_seed)
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from tipr.data import ImageList, Modality, Partition, TrainPairs, build_transform, load_dataset, partition_pairs
from tipr.data.text_context import report_long_captions
from tipr.evaluate import evaluate
from tipr.hub import HubUnreachableError, hub_reachable
from tipr.metrics import format_table
from tipr.models.tipr_model import TIPRModel
from tipr.objectives import build_objective
from tipr.training.args import model_kwargs, parse_args
from tipr.training.checkpoint import (CheckpointError, load_checkpoint, remove_stale_temporaries, resolve_checkpoint,
                                      save_checkpoint)
from tipr.training.generated import GeneratedImages, WithGenerated, default_generator, prepare_generated
from tipr.training.loaders import Indexed, PairTexts, SeededItems
from tipr.training.model_card import write_model_card

logger = get_logger(__name__, log_level="INFO")


class TrainStep(nn.Module):
    """The model and its objective as one module, so that DDP and autocast see the whole training forward."""

    def __init__(self, model: TIPRModel, objective):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: Mapping) -> dict[str, torch.Tensor]:
        return self.objective(self.model, batch)


def make_partition(args, dataset) -> Partition:
    num_pairs = len(dataset.train)
    if args.partition_file:
        return Partition.load(args.partition_file, num_pairs)
    groups = [r.image_id for r in dataset.train] if args.partition_by == "image" else None
    return partition_pairs(num_pairs, args.setting, seed=args.partition_seed, groups=groups)


def counting(loader: Iterable[Mapping], counts: torch.Tensor, gather) -> Iterable[Mapping]:
    """Yield the batches of `loader`, counting (across ranks) how often each index is seen."""
    for batch in loader:
        index = gather(batch["index"]).cpu().long()
        counts.index_add_(0, index, torch.ones_like(index))
        yield batch


def coverage_report(counts: torch.Tensor) -> dict:
    missing = torch.nonzero(counts == 0).flatten()
    repeated = torch.nonzero(counts > 1).flatten()
    return {"total": len(counts), "covered_once": int((counts == 1).sum()), "missing": len(missing),
            "repeated": len(repeated), "examples_missing": missing[:10].tolist(),
            "examples_repeated": repeated[:10].tolist()}


def tracker_config(args) -> dict:
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in vars(args).items()}


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir),
                                            logging_dir=str(output_dir / args.logging_dir)),
        cpu=args.cpu,
        # a seeded sampler: epoch e's order depends on (seed, e) only, so a resumed run sees the same batches
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
        # heads can sit out a step (e.g. GIF without two complete pairs in a batch)
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%H:%M:%S",
                        level=logging.WARNING)  # this script's logger says INFO; libraries only warnings
    logger.info(accelerator.state, main_process_only=False)
    if args.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
    set_seed(args.seed)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(output_dir)
        if args.push_to_hub and not hub_reachable():
            logger.warning("the Hugging Face Hub cannot be reached now: the model will be saved in %s and the "
                           "upload tried at the end", output_dir)
    accelerator.wait_for_everyone()

    # ------------------------------------------------------------------------------------------------ data
    dataset = load_dataset(args.dataset, args.data_root, skip_missing_images=args.skip_missing_images)
    partition = make_partition(args, dataset)
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
    image_size = tuple(args.image_size)
    tokenizer = model.backbone.tokenizer
    train_pairs = TrainPairs(dataset.train, transform=build_transform(image_size, train=True), tokenize=tokenizer,
                             partition=partition, supervised=args.supervised)
    val_generated = test_generated = None
    if objective.requires_generated:
        generator = args.generator or default_generator()
        if generator is None:
            raise SystemExit(f"error: --method {args.method} reads generated images: pass --generator (a diffusers "
                             f"pipeline Hub id such as stabilityai/sd-turbo, or a local pipeline folder such as "
                             f"one saved by train/train_generator.py)")
        cache_dir = args.generation_cache or str(output_dir / "generated")
        unused = {Modality.TEXT_MISSING} | ({Modality.IMAGE_MISSING} if not objective.uses_incomplete_pairs else set())
        train_captions = [None if m in unused else r.caption  # a missing text has no image; unused pairs need none
                          for r, m in zip(dataset.train, partition.modes)]
        eval_captions = list(dataset.val.captions) + list(dataset.test.captions)
        keys = prepare_generated(train_captions + eval_captions, generator=generator, cache_dir=cache_dir,
                                 steps=args.generation_steps, guidance_scale=args.guidance_scale,
                                 seed=args.generation_seed, batch_size=args.generation_batch_size,
                                 device=accelerator.device, accelerator=accelerator,
                                 progress=accelerator.is_main_process)
        test_tf = build_transform(image_size, train=False)
        blank = torch.zeros(3, *image_size)
        n_train, n_val = len(train_captions), dataset.val.num_captions
        train_pairs = WithGenerated(train_pairs, GeneratedImages(keys[:n_train], cache_dir, test_tf, blank))
        val_generated = GeneratedImages(keys[n_train:n_train + n_val], cache_dir, test_tf, blank)
        test_generated = GeneratedImages(keys[n_train + n_val:], cache_dir, test_tf, blank)
    if not objective.uses_incomplete_pairs:
        # clip, gea and ECCA without FMC can use complete pairs only: train on those, at the full batch size
        train_pairs = Subset(train_pairs, partition.indices(Modality.COMPLETE).tolist())
    train_dataset = SeededItems(train_pairs, args.seed)
    train_dataloader = DataLoader(train_dataset, batch_size=args.train_batch_size, shuffle=True, drop_last=True,
                                  num_workers=args.dataloader_num_workers)
    bank_loaders = None
    if objective.requires_bank:
        test_tf = build_transform(image_size, train=False)
        bank_loaders = (
            DataLoader(Indexed(ImageList(dataset.train_image_paths, test_tf), "image"),
                       batch_size=args.eval_batch_size, num_workers=args.dataloader_num_workers),
            DataLoader(PairTexts([r.caption for r in dataset.train], partition.modes, tokenizer),
                       batch_size=args.eval_batch_size, num_workers=args.dataloader_num_workers),
        )

    # ------------------------------------------------------------------------------------ optimisation
    step_module = TrainStep(model, objective)
    # the method's heads start from scratch (and GEA's gates from 0) while the backbone is pretrained: like
    # IRRA's lr_factor, they may learn faster than the backbone
    backbone_params = {id(p) for p in model.backbone.parameters()}
    heads = [p for p in step_module.parameters() if id(p) not in backbone_params]
    groups = [{"params": [p for p in step_module.parameters() if id(p) in backbone_params]}]
    if heads:
        groups.append({"params": heads, "lr": args.learning_rate * args.head_lr_scale})
    optimizer = torch.optim.Adam(groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                 eps=args.adam_epsilon, weight_decay=args.adam_weight_decay)
    step_module, optimizer, train_dataloader = accelerator.prepare(step_module, optimizer, train_dataloader)
    if len(train_dataloader) == 0:
        raise SystemExit(f"error: {len(train_pairs)} train pairs make no full batch of {args.train_batch_size} per "
                         f"process on {accelerator.num_processes} process(es); lower --train_batch_size")
    updates_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * updates_per_epoch
    num_epochs = math.ceil(max_train_steps / updates_per_epoch)
    warmup = args.lr_warmup_steps
    if warmup is None:
        warmup = min(5 * updates_per_epoch, max_train_steps // 10)
    from diffusers.optimization import get_scheduler

    # the prepared scheduler steps once per process per update (diffusers' convention)
    lr_scheduler = accelerator.prepare(get_scheduler(
        args.lr_scheduler, optimizer.optimizer, num_warmup_steps=warmup * accelerator.num_processes,
        num_training_steps=max_train_steps * accelerator.num_processes))
    if bank_loaders is not None:
        bank_loaders = tuple(accelerator.prepare_data_loader(loader) for loader in bank_loaders)
    bank_in_checkpoints = hasattr(objective, "state_dict") and hasattr(objective, "load_state_dict")
    if bank_in_checkpoints:
        accelerator.register_for_checkpointing(objective)  # e.g. the feature bank, for exact mid-epoch resume
    unwrapped = accelerator.unwrap_model(step_module).model

    if accelerator.is_main_process:
        accelerator.init_trackers(args.tracker_project_name, config=tracker_config(args))

    # --------------------------------------------------------------------------------------- resume
    global_step, first_epoch, skip_batches = 0, 0, 0
    best = {"R1": -1.0, "metrics": None, "epoch": None, "step": None}
    if args.resume_from_checkpoint:
        path = resolve_checkpoint(args.resume_from_checkpoint, output_dir)
        if path is None:
            logger.info("no checkpoint in %s yet; starting a new run", output_dir)
        else:
            try:
                state = load_checkpoint(accelerator, path)
            except CheckpointError as err:
                raise SystemExit(f"error: {err}") from None
            logger.info("resumed from %s at step %d", path, state["global_step"])
            global_step, first_epoch, skip_batches = state["global_step"], state["epoch"], state["batches_done"]
            best = state.get("best", best)
            for key, now in (("world_size", accelerator.num_processes), ("train_batch_size", args.train_batch_size),
                             ("gradient_accumulation_steps", args.gradient_accumulation_steps)):
                if state.get(key) != now:
                    logger.warning("%s was %s and is now %s: the run continues, but not with the batches an "
                                   "uninterrupted run would have seen", key, state.get(key), now)
            if skip_batches >= len(train_dataloader):
                first_epoch, skip_batches = first_epoch + 1, 0

    logger.info("***** training %s *****\n  pairs = %d, epochs = %d, updates per epoch = %d, total updates = %d\n"
                "  batch per device = %d, processes = %d, accumulation = %d, warm-up = %d", args.method,
                len(train_pairs), num_epochs, updates_per_epoch, max_train_steps, args.train_batch_size,
                accelerator.num_processes, args.gradient_accumulation_steps, warmup)
    progress = tqdm(range(max_train_steps), initial=global_step, desc="steps",
                    disable=not accelerator.is_main_process)
    rerank_top_k = unwrapped.gea_config.rerank_top_k if args.eval_rerank and unwrapped.gea_config else 0
    bank_epoch = None
    last_validated = -1

    def state_now(epoch: int, batches_done: int) -> dict:
        return {"global_step": global_step, "epoch": epoch, "batches_done": batches_done, "best": best,
                "world_size": accelerator.num_processes, "train_batch_size": args.train_batch_size,
                "gradient_accumulation_steps": args.gradient_accumulation_steps, "seed": args.seed,
                "method": args.method}

    def checkpoint(epoch: int, batches_done: int) -> None:
        path = save_checkpoint(accelerator, output_dir, global_step, state_now(epoch, batches_done),
                               total_limit=args.checkpoints_total_limit)
        logger.info("saved %s", path)

    def validate(epoch: int) -> None:
        nonlocal last_validated
        metrics = evaluate(unwrapped, dataset.val, batch_size=args.eval_batch_size, device=accelerator.device,
                           generated=val_generated, rerank_top_k=rerank_top_k, accelerator=accelerator,
                           num_workers=args.dataloader_num_workers)
        last_validated = global_step
        accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=global_step)
        if metrics["R1"] > best["R1"]:
            best.update(R1=metrics["R1"], metrics=metrics, epoch=epoch + 1, step=global_step)
            if accelerator.is_main_process:
                unwrapped.save_pretrained(output_dir / "best")
                (output_dir / "best" / "tipr_best.json").write_text(json.dumps({"step": global_step}))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            progress.write(format_table({f"val epoch {epoch + 1} (step {global_step})": metrics}))

    timer = {"train_seconds": 0.0, "bank_seconds": 0.0, "bank_refreshes": 0}

    def refresh_bank(epoch: int) -> None:
        start = time.perf_counter()
        counts = (torch.zeros(len(dataset.train_image_paths), dtype=torch.long),
                  torch.zeros(len(dataset.train), dtype=torch.long))
        loaders = [counting(loader, c, accelerator.gather_for_metrics) for loader, c in zip(bank_loaders, counts)]
        with accelerator.autocast():
            objective.refresh(unwrapped, image_loader=loaders[0], text_loader=loaders[1],
                              gather=accelerator.gather_for_metrics)
        report = {"epoch": epoch, "global_step": global_step, "world_size": accelerator.num_processes,
                  "images": coverage_report(counts[0]), "texts": coverage_report(counts[1])}
        timer["bank_seconds"] += time.perf_counter() - start
        timer["bank_refreshes"] += 1
        if accelerator.is_main_process:
            (output_dir / "bank_coverage.json").write_text(json.dumps(report, indent=1))
        accelerator.log({"bank/images_covered_once": report["images"]["covered_once"],
                         "bank/texts_covered_once": report["texts"]["covered_once"]}, step=global_step)

    # ------------------------------------------------------------------------------------ the loop
    for epoch in range(first_epoch, num_epochs):
        if global_step >= max_train_steps:
            break
        step_module.train()
        if objective.requires_bank:
            refresh_every = unwrapped.ecca_config.bank_refresh_epochs if unwrapped.ecca_config else 1
            due = epoch % refresh_every == 0 and not (bank_epoch is None and skip_batches)
            if bank_epoch is None and not due and global_step > 0 and bank_in_checkpoints:
                bank_epoch = epoch  # resumed inside a bank period: the checkpoint restored the bank
            elif bank_epoch is None or due:
                if not due:
                    logger.warning("resumed inside a bank period: ECCA's feature bank is rebuilt from the resumed "
                                   "weights, so the run is not bitwise identical to an uninterrupted one")
                refresh_bank(epoch)
                bank_epoch = epoch
        train_dataset.set_epoch(epoch)
        train_dataloader.set_epoch(epoch)
        loader = train_dataloader
        batches_done = 0
        if epoch == first_epoch and skip_batches:
            loader = accelerator.skip_first_batches(train_dataloader, skip_batches)
            loader.set_epoch(epoch)
            batches_done = skip_batches
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
                global_step += 1
                progress.update(1)
                logs = {k: float(v.detach()) for k, v in losses.items()} | {"lr": lr_scheduler.get_last_lr()[0]}
                progress.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{logs['lr']:.2e}")
                accelerator.log({f"train/{k}": v for k, v in logs.items()}, step=global_step)
                if global_step % args.checkpointing_steps == 0:
                    if batches_done == len(train_dataloader):
                        pending_checkpoint = True  # after this epoch's validation, which the state then includes
                    else:
                        checkpoint(epoch, batches_done)
                if global_step >= max_train_steps:
                    break
        timer["train_seconds"] += time.perf_counter() - epoch_start
        last_epoch = global_step >= max_train_steps or epoch == num_epochs - 1
        if args.validation_epochs and ((epoch + 1) % args.validation_epochs == 0 or last_epoch):
            validate(epoch)
        if pending_checkpoint:
            checkpoint(epoch, batches_done)

    # ---------------------------------------------------------------------------------- the end
    progress.close()
    if args.validation_epochs and last_validated != global_step and global_step > 0:
        validate(num_epochs - 1)
    accelerator.wait_for_everyone()
    results = {}
    if best["step"] is not None and best["step"] != global_step:
        marker = output_dir / "best" / "tipr_best.json"
        if marker.is_file() and json.loads(marker.read_text())["step"] == best["step"]:
            from safetensors.torch import load_model as load_safetensors

            load_safetensors(unwrapped, str(output_dir / "best" / "model.safetensors"))
            logger.info("the final model is the best on val: epoch %s, step %s", best["epoch"], best["step"])
        else:
            logger.warning("%s does not hold the best model of this run; the final model is the last one", marker)
    if best["metrics"] is not None:
        results[f"val (best: epoch {best['epoch']}, step {best['step']})"] = best["metrics"]
    if args.eval_test:
        test = evaluate(unwrapped, dataset.test, batch_size=args.eval_batch_size, device=accelerator.device,
                        generated=test_generated, rerank_top_k=rerank_top_k, accelerator=accelerator,
                        num_workers=args.dataloader_num_workers)
        accelerator.log({f"test/{k}": v for k, v in test.items()}, step=global_step)
        results["test"] = test
    digest = _parameter_digest(unwrapped)
    digests = gather_object([digest])
    if accelerator.is_main_process:
        unwrapped.save_pretrained(output_dir)
        hyper = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
                 if k not in ("hub_token", "config")}
        write_model_card(output_dir, method=args.method, dataset=args.dataset, setting=partition.setting,
                         hyperparameters=hyper, results=results,
                         base_model=None if args.pretrained is None else f"{args.model_name} ({args.pretrained})")
        # wall time of the training loop plus bank refreshes (no evaluation, no checkpoints), for speed ratios
        timer["train_seconds"] += timer["bank_seconds"]
        summary = {"results": results, "global_step": global_step, "epochs": num_epochs,
                   "epochs_trained": global_step / updates_per_epoch, **timer,
                   "world_size": accelerator.num_processes, "parameter_digests": digests,
                   "best": {k: best[k] for k in ("epoch", "step", "R1")}}
        (output_dir / "results.json").write_text(json.dumps(summary, indent=1))
        if results:
            print(format_table(results), flush=True)
        logger.info("saved the model to %s (config.json, model.safetensors, README.md)", output_dir)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if args.push_to_hub and accelerator.is_main_process:
        from tipr.training.hub_push import push_folder

        url = push_folder(output_dir, args.hub_model_id, token=args.hub_token, private=args.hub_private_repo,
                          commit_message=f"tipr {args.method} on {args.dataset} ({args.setting})")
        logger.info("pushed to %s", url)
    return results


def _parameter_digest(model: nn.Module) -> str:
    """sha256 of every parameter's bytes: equal on every rank when they trained in sync."""
    import hashlib

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
