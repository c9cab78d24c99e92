"""Train tipr's tiny text-to-image pipeline (pixel-space UNet + DDIM + open_clip text tower) on SynthPEDES.

    python -m tipr.data.synthetic --out data/synth --identities 1000 --seed 0 --image_size 128x64
    python train/train_generator.py --data_root data/synth --output_dir assets/generator \\
        --text_pretrained PRETRAINED_TIPR_MODEL --samples_out assets/generator_samples.png

The UNet predicts the clean image (x0) at --resolution (default 32x16: garment colours read fine at that size,
and a step costs a third of one at 64x32) with a plain MSE at uniformly drawn timesteps (--timestep_power);
captions are dropped (replaced by the empty prompt) with probability --caption_dropout so sampling can use
classifier-free guidance. --text_pretrained takes the text tower from a CLIP
that already knows the colour words (a tipr model folder such as assets/build.py's pretrain-run, or open_clip
weights). Where the records carry SynthPEDES attributes, the tower is first fine-tuned for --text_warmup_steps to
name the garment colours and types each caption mentions (tipr.generation.attribute_warmup: InfoNCE alone leaves
it unable to tell whose colour is whose); it is then kept frozen unless --train_text_encoder. The defaults stop
after 4000 steps or 20 minutes of training, whichever comes first (one CPU thread: ~0.2 s per step with a frozen
text tower, plus ~3 minutes of warm-up). The result is a diffusers pipeline folder:
`tipr.generation.load_generator(output_dir)` or `python -m tipr.generate --generator output_dir` use it (both
resize to 384x128).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import textwrap
import time
from pathlib import Path

try:
    import tipr  # noqa: F401  (repairs torchvision before diffusers imports it)
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import tipr  # noqa: F401

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from diffusers.training_utils import EMAModel, compute_snr
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from tipr.data import load_dataset
from tipr.generation.attribute_warmup import attribute_targets, warm_up_text_tower
from tipr.generation.tiny_pipeline import TiprTinyText2ImagePipeline, unet_conditioning
from tipr.hub import HubUnreachableError
from tipr.training.args import parse_size
from tipr.training.checkpoint import (CheckpointError, load_checkpoint, prepare_output_dir, resolve_checkpoint,
                                      save_checkpoint)
from tipr.training.ema import checkpoint_ema
from tipr.training.hub_push import push_folder, warn_if_unreachable

logger = logging.getLogger("train_generator")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_root", required=True, help="folder holding CUHK-PEDES/reid_raw.json and imgs/ (SynthPEDES)")
    p.add_argument("--dataset", default="cuhk-pedes",
                   help="annotation format of --data_root (SynthPEDES writes the CUHK-PEDES layout)")
    p.add_argument("--output_dir", default="tiny-generator", help="pipeline folder to write (save_pretrained)")
    p.add_argument("--init_from", default=None, help="continue from an existing tiny pipeline folder")
    p.add_argument("--text_model", default="tipr-tiny", help="open_clip config whose text tower conditions the UNet")
    p.add_argument("--text_pretrained", default=None,
                   help="weights for the text tower: an open_clip tag or checkpoint file, or a tipr model folder "
                        "(train/run.py output, e.g. the tiny CLIP of assets/build.py's pretrain stage); default: random")
    p.add_argument("--pooling", choices=("mean", "eot"), default="mean",
                   help="a new pipeline's global caption vector for the UNet: the mean of the tokens, or the end-of-text "
                        "token, which CLIP aligns with images (no better in docs/gea.md's colour-fidelity table)")
    p.add_argument("--resolution", type=_size, default=(32, 16), metavar="HxW",
                   help="native size of a new pipeline's UNet (the Generator resizes its output to 384x128)")
    p.add_argument("--train_text_encoder", action=argparse.BooleanOptionalAction, default=None,
                   help="fine-tune the text tower with the UNet (default: only when it starts from random weights; "
                        "a pretrained one is kept frozen, so its colour words keep their meaning)")
    p.add_argument("--text_warmup_steps", type=int, default=1500,
                   help="first fine-tune the text tower to name the attributes a caption mentions (SynthPEDES "
                        "records carry them; skipped for data without attributes and with --init_from; 0: off)")
    p.add_argument("--text_warmup_lr", type=float, default=1e-3, help="learning rate of the attribute warm-up")
    p.add_argument("--text_warmup_data", nargs="*", default=[], metavar="DIR",
                   help="more SynthPEDES folders whose train captions join the warm-up (text only; e.g. another draw)")
    p.add_argument("--max_train_steps", type=int, default=4000,
                   help="optimizer steps (about 13 minutes on one CPU thread at 32x16, batch 32, frozen text tower; "
                        "8000 steps named the colours less often, docs/gea.md)")
    p.add_argument("--max_train_minutes", type=float, default=20.0,
                   help="also stop (and save) once this much training time has passed (0: no limit)")
    p.add_argument("--train_batch_size", type=int, default=32)
    p.add_argument("--learning_rate", type=float, default=2e-3, help="UNet learning rate (AdamW)")
    p.add_argument("--text_encoder_lr", type=float, default=5e-4, help="text tower learning rate")
    p.add_argument("--weight_decay", type=float, default=1e-2)
    p.add_argument("--lr_warmup_steps", type=int, default=30, help="linear warm-up, then cosine decay")
    p.add_argument("--max_grad_norm", type=float, default=1.0)
    p.add_argument("--prediction_type", default=None, choices=["sample", "v_prediction", "epsilon"],
                   help="what the UNet predicts (default: the scheduler's, 'sample' for a new pipeline)")
    p.add_argument("--timestep_power", type=float, default=1.0,
                   help="t = T(1 - u^power): 1 is uniform; >1 trains the high-noise steps more, but leaves the "
                        "low-noise ones the sampler ends on undertrained (3 gave blurred figures, docs/gea.md)")
    p.add_argument("--caption_dropout", type=float, default=0.1, help="probability of training on the empty prompt")
    p.add_argument("--snr_gamma", type=float, default=0.0,
                   help="min-SNR-gamma weighting (0: plain MSE, which keeps the high-noise steps that set colours)")
    p.add_argument("--hflip", action="store_true", help="random horizontal flips (captions must not say left/right)")
    p.add_argument("--use_ema", action="store_true",
                   help="keep an EMA of the UNet weights and save it (with the cosine decay to 0 it matched the "
                        "last weights: same colour-fidelity figures)")
    p.add_argument("--ema_decay", type=float, default=0.995)
    p.add_argument("--gradient_accumulation_steps", type=int, default=1)
    p.add_argument("--mixed_precision", default="no", choices=["no", "fp16", "bf16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num_threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--checkpointing_steps", type=int, default=0, help="save checkpoint-N every N steps (0: never)")
    p.add_argument("--checkpoints_total_limit", type=int, default=2, help="keep at most this many checkpoints")
    p.add_argument("--resume_from_checkpoint", default=None, help="a checkpoint-N folder, or 'latest'")
    p.add_argument("--report_to", default="tensorboard", help="accelerate tracker: tensorboard, wandb, all, none")
    p.add_argument("--logging_dir", default="logs", help="tracker folder, relative to --output_dir")
    p.add_argument("--samples_out", default=None, help="write a PNG grid of samples with their captions here")
    p.add_argument("--num_samples", type=int, default=8, help="captions in the sample grid (from the test split)")
    p.add_argument("--sample_steps", type=int, default=20)
    p.add_argument("--guidance_scale", type=float, default=3.0)
    p.add_argument("--push_to_hub", action="store_true", help="upload --output_dir to --hub_model_id")
    p.add_argument("--hub_model_id", default=None, help="owner/name of the Hub repo")
    p.add_argument("--hub_token", default=None, help="Hub token (default: the logged-in one)")
    p.add_argument("--hub_private_repo", action="store_true", help="create the repo as private")
    args = p.parse_args(argv)
    if args.train_text_encoder is None:
        args.train_text_encoder = args.text_pretrained is None
    if args.push_to_hub and not args.hub_model_id:
        p.error("--push_to_hub needs --hub_model_id owner/name")
    return args


def load_training_data(args: argparse.Namespace, size: tuple[int, int]):
    """All train images as one uint8 tensor [N, 3, H, W] plus (image index, caption) pairs; test captions."""
    dataset = load_dataset(args.dataset, args.data_root)
    height, width = size
    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((width, height), Image.Resampling.BOX))
                       for p in dataset.train_image_paths])
    pairs = [(r.image_id, r.caption) for r in dataset.train]
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), pairs, dataset


def warm_up(args: argparse.Namespace, text_encoder, token_ids: torch.Tensor, dataset, pooling: str,
            train: bool = True) -> bool:
    """The attribute warm-up of tipr.generation.attribute_warmup where the training records carry attributes
    (True); `train` False when a checkpoint about to be loaded holds its result."""
    records = list(dataset.train) + [r for root in args.text_warmup_data for r in load_dataset(args.dataset, root).train]
    targets = attribute_targets([r.caption for r in records], [r.attributes for r in records])
    if not targets:
        logger.info("--text_warmup_steps: the training records carry no attributes (not SynthPEDES); skipped")
        return False
    if not train:
        logger.info("text warm-up: restored with the checkpoint")
        return True

    def pool(features: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return unet_conditioning(features, text_encoder.attention_mask(ids), pooling)["class_labels"]

    if len(records) > len(token_ids):
        token_ids = torch.cat([token_ids, text_encoder.tokenize([r.caption for r in records[len(token_ids):]]).cpu()])
    start = time.perf_counter()
    result = warm_up_text_tower(text_encoder, token_ids.to(text_encoder.device),
                                {k: v.to(text_encoder.device) for k, v in targets.items()}, pool=pool,
                                steps=args.text_warmup_steps, learning_rate=args.text_warmup_lr, seed=args.seed)
    logger.info("text warm-up: %d steps over %d captions in %.1f s, loss %.3f; train accuracy %s", result.steps,
                len(records), time.perf_counter() - start, result.loss,
                ", ".join(f"{k} {100 * v:.0f}%" for k, v in result.accuracy.items()))
    return True


def _size(text: str) -> tuple[int, int]:
    height, width = parse_size(text)
    if height % 8 or width % 8:
        raise argparse.ArgumentTypeError(f"{text}: height and width must be positive multiples of 8 (3 downsamplings)")
    return height, width


def lr_lambda(warmup: int, total: int):
    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
    return schedule


def sample_grid(pipe: TiprTinyText2ImagePipeline, captions: list[str], real: list[Image.Image | None], *,
                steps: int, guidance_scale: float, seed: int, height: int = 192) -> Image.Image:
    """One row per caption: generated image (enlarged by a whole factor to about `height` pixels), the real image
    it describes, the caption."""
    generators = [torch.Generator().manual_seed(seed + i) for i in range(len(captions))]
    fakes = pipe(captions, num_inference_steps=steps, guidance_scale=guidance_scale, generator=generators).images
    scale = max(1, round(height / fakes[0].height))
    w, h = fakes[0].width * scale, fakes[0].height * scale
    text_w, pad = 330, 6
    grid = Image.new("RGB", (2 * w + text_w + 4 * pad, len(captions) * (h + pad) + pad), "white")
    draw = ImageDraw.Draw(grid)
    for row, (caption, fake, image) in enumerate(zip(captions, fakes, real)):
        y = pad + row * (h + pad)
        grid.paste(fake.resize((w, h), Image.Resampling.NEAREST), (pad, y))
        if image is not None:
            grid.paste(image.convert("RGB").resize((w, h), Image.Resampling.BICUBIC), (2 * pad + w, y))
        draw.multiline_text((3 * pad + 2 * w, y + 4), textwrap.fill(caption, 52), fill="black")
    return grid


def write_model_card(args: argparse.Namespace, folder: Path, steps: int, seconds: float, final_loss: float,
                     prediction: str, size: tuple[int, int], pooling: str, warmed_up: bool) -> None:
    hub = f"\nHub repo: `{args.hub_model_id}`\n" if args.hub_model_id else ""
    origin = f"weights from `{Path(args.text_pretrained).name}`" if args.text_pretrained else "random weights"
    tower = f"{origin}, {'fine-tuned' if args.train_text_encoder else 'frozen'}"
    if warmed_up:
        tower += f" after a {args.text_warmup_steps}-step warm-up naming the SynthPEDES attributes a caption mentions"
    pooling = {"mean": "mean", "eot": "end-of-text token"}[pooling]
    (folder / "README.md").write_text(f"""---
library_name: diffusers
license: apache-2.0
tags: [text-to-image, tipr, person-retrieval, synthetic]
---

# tipr tiny text-to-image generator

A {size[0]}x{size[1]} pixel-space `UNet2DConditionModel` with a `DDIMScheduler`
(`{prediction}` prediction), conditioned on the token features of the `{args.text_model}` open_clip text tower
({tower}; cross-attention, and their {pooling} through the time embedding), trained on SynthPEDES
captions with `train/train_generator.py` ({steps} steps at batch {args.train_batch_size},
{seconds / 60:.1f} minutes, final loss {final_loss:.4f}). It is trained to render the clothing colours a caption
describes (see the sample grid written with `--samples_out`); it is GEA's offline stand-in for a real
text-to-image model such as SD-Turbo, not a general image generator.
{hub}
```python
from tipr.generation import load_generator
generator = load_generator("{folder.name}")
images = generator.generate(["a man in a red jacket and black trousers"])
```
""")


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps, mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir),
                                            logging_dir=str(output_dir / args.logging_dir)))
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    set_seed(args.seed)
    if accelerator.is_main_process:
        prepare_output_dir(output_dir)
        if args.push_to_hub:
            warn_if_unreachable(output_dir)

    if args.init_from:
        pipe = TiprTinyText2ImagePipeline.from_pretrained(args.init_from, dtype=torch.float32)
    else:
        pipe = TiprTinyText2ImagePipeline.from_scratch(seed=args.seed, text_model=args.text_model,
                                                       text_pretrained=args.text_pretrained,
                                                       sample_size=args.resolution, pooling=args.pooling)
    if args.prediction_type:
        pipe.register_modules(scheduler=type(pipe.scheduler).from_config(pipe.scheduler.config,
                                                                        prediction_type=args.prediction_type))
    unet, text_encoder, scheduler = pipe.unet, pipe.text_encoder, pipe.scheduler
    size = tuple(unet.config.sample_size)
    images, pairs, dataset = load_training_data(args, size)
    token_ids = text_encoder.tokenize([c for _, c in pairs]).cpu()
    empty_ids = text_encoder.tokenize([""]).cpu()
    image_index = torch.tensor([i for i, _ in pairs])
    logger.info("%d captions of %d images from %s; UNet %.2fM, text tower %.2fM parameters", len(pairs), len(images),
                args.data_root, sum(p.numel() for p in unet.parameters()) / 1e6,
                sum(p.numel() for p in text_encoder.parameters()) / 1e6)

    pooling = text_encoder.config.pooling  # how the UNet's global caption vector is pooled (fixed per pipeline)
    resume = resolve_checkpoint(args.resume_from_checkpoint, output_dir) if args.resume_from_checkpoint else None
    # every process warms up alike (same seed, same data); a checkpoint already holds the warmed-up tower
    warmed_up = bool(args.text_warmup_steps and not args.init_from
                     and warm_up(args, text_encoder.to(accelerator.device), token_ids, dataset, pooling,
                                 train=resume is None))
    text_encoder.requires_grad_(args.train_text_encoder)
    groups = [{"params": unet.parameters(), "lr": args.learning_rate}]
    if args.train_text_encoder:
        groups.append({"params": text_encoder.parameters(), "lr": args.text_encoder_lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=args.weight_decay)
    # the prepared scheduler steps once per process per update (accelerate's convention, as in train/run.py)
    procs = accelerator.num_processes
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(args.lr_warmup_steps * procs, args.max_train_steps * procs))
    unet, text_encoder, optimizer, lr_scheduler = accelerator.prepare(unet, text_encoder, optimizer, lr_scheduler)
    trainable = [p for p in list(unet.parameters()) + list(text_encoder.parameters()) if p.requires_grad]
    ema = EMAModel(accelerator.unwrap_model(unet).parameters(), decay=args.ema_decay) if args.use_ema else None
    if ema is not None:
        checkpoint_ema(accelerator, ema)

    first_step = 0
    if args.resume_from_checkpoint:
        if resume is None:
            logger.info("no checkpoint in %s: starting from scratch", output_dir)
        else:
            try:
                first_step = load_checkpoint(accelerator, resume)["global_step"]
            except CheckpointError as err:
                raise SystemExit(f"error: {err}") from None
    if accelerator.is_main_process and args.report_to != "none":
        accelerator.init_trackers("train_generator", config={k: v for k, v in vars(args).items()
                                                              if isinstance(v, (int, float, str, bool))})

    bar = tqdm(range(first_step, args.max_train_steps), initial=first_step, total=args.max_train_steps,
               desc="steps", disable=not accelerator.is_local_main_process)
    start, loss_avg, last_step = time.perf_counter(), float("nan"), args.max_train_steps
    for step in bar:
        for micro in range(args.gradient_accumulation_steps):
            # every random draw comes from (seed, step, micro, rank): a resumed run continues the same sequence
            rng = torch.Generator().manual_seed(hash_seed(args.seed, step, micro, accelerator.process_index))
            pick = torch.randint(len(pairs), (args.train_batch_size,), generator=rng)
            x0 = images[image_index[pick]].float().div(127.5).sub(1)
            if args.hflip:
                flip = torch.rand(len(pick), generator=rng) < 0.5
                x0[flip] = x0[flip].flip(-1)
            ids = token_ids[pick].clone()
            ids[torch.rand(len(pick), generator=rng) < args.caption_dropout] = empty_ids
            noise = torch.randn(x0.shape, generator=rng)
            t = _sample_timesteps(scheduler.config.num_train_timesteps, len(pick), args.timestep_power, rng)
            x0, ids, noise, t = (v.to(accelerator.device) for v in (x0, ids, noise, t))
            with accelerator.accumulate(unet, text_encoder):
                with torch.set_grad_enabled(args.train_text_encoder):
                    cond = text_encoder(ids)
                mask = accelerator.unwrap_model(text_encoder).attention_mask(ids)
                pred = unet(scheduler.add_noise(x0, noise, t), t, **unet_conditioning(cond, mask, pooling)).sample
                target = _target(scheduler, x0, noise, t)
                loss = F.mse_loss(pred.float(), target, reduction="none").mean(dim=(1, 2, 3))
                if args.snr_gamma > 0:
                    loss = loss * _min_snr_weight(scheduler, t, args.snr_gamma)
                loss = loss.mean()
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(trainable, args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(accelerator.unwrap_model(unet).parameters())
        value = accelerator.gather(loss.detach()).mean().item()
        loss_avg = value if math.isnan(loss_avg) else 0.95 * loss_avg + 0.05 * value
        bar.set_postfix(loss=f"{loss_avg:.4f}")
        accelerator.log({"loss": value, "lr": lr_scheduler.get_last_lr()[0]}, step=step + 1)
        if args.max_train_minutes and time.perf_counter() - start > 60 * args.max_train_minutes:
            logger.info("time budget of %.1f minutes reached after %d steps", args.max_train_minutes, step + 1)
            last_step = step + 1
            break
        if args.checkpointing_steps and (step + 1) % args.checkpointing_steps == 0:
            save_checkpoint(accelerator, output_dir, step + 1, {"global_step": step + 1, "seed": args.seed,
                                                                "world_size": accelerator.num_processes},
                            total_limit=args.checkpoints_total_limit)
    seconds = time.perf_counter() - start

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        pipe.unet, pipe.text_encoder = accelerator.unwrap_model(unet), accelerator.unwrap_model(text_encoder)
        if ema is not None:
            ema.copy_to(pipe.unet.parameters())
        pipe.to("cpu")
        pipe.save_pretrained(output_dir)
        write_model_card(args, output_dir, last_step, seconds, loss_avg, scheduler.config.prediction_type,
                         size, pooling, warmed_up)
        logger.info("saved %s after %d steps in %.1f s (%.2f s/step), loss %.4f", output_dir, last_step,
                    seconds, seconds / max(1, last_step - first_step), loss_avg)
        if args.samples_out:
            test = dataset.test if dataset.test.captions else dataset.val
            every = max(1, len(test.captions) // args.num_samples)
            chosen = list(range(0, len(test.captions), every))[:args.num_samples]
            path_of_pid = dict(zip(test.image_pids, test.image_paths))
            real = [Image.open(path_of_pid[test.caption_pids[i]]) if test.caption_pids[i] in path_of_pid else None
                    for i in chosen]
            pipe.set_progress_bar_config(disable=True)
            grid = sample_grid(pipe, [test.captions[i] for i in chosen], real, steps=args.sample_steps,
                               guidance_scale=args.guidance_scale, seed=args.seed)
            Path(args.samples_out).parent.mkdir(parents=True, exist_ok=True)
            grid.save(args.samples_out)
            logger.info("sample grid: %s", args.samples_out)
    accelerator.end_training()
    if args.push_to_hub and accelerator.is_main_process:
        logger.info("pushed to %s", push_folder(output_dir, args.hub_model_id, token=args.hub_token,
                                                private=args.hub_private_repo,
                                                commit_message="tipr tiny text-to-image generator"))
    return output_dir


def hash_seed(*parts: int) -> int:
    value = 0
    for part in parts:
        value = (value * 1_000_003 + part) % (2**63 - 1)
    return value


def _target(scheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    kind = scheduler.config.prediction_type
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    return {"epsilon": noise, "sample": x0}[kind]


def _sample_timesteps(num_timesteps: int, n: int, power: float, rng: torch.Generator) -> torch.Tensor:
    """t = T * (1 - u**power): power 1 is uniform, power > 1 favours the noisy steps where the caption matters."""
    u = torch.rand(n, generator=rng)
    return ((1 - u.pow(power)) * num_timesteps).long().clamp(0, num_timesteps - 1)


def _min_snr_weight(scheduler, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma weights, expressed for what the UNet predicts (Hang et al. 2023)."""
    snr = compute_snr(scheduler, t)
    divisor = {"epsilon": snr, "v_prediction": snr + 1, "sample": torch.ones_like(snr)}
    return snr.clamp(max=gamma) / divisor[scheduler.config.prediction_type]


if __name__ == "__main__":
    try:
        main()
    except HubUnreachableError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
