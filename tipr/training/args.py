"""Command-line options of train/run.py: every option a flag with help, a YAML --config, and presets.

Precedence, lowest first: the papers' defaults, `--preset`, `--config file.yaml`, flags on the command line.
ECCA and GEA options are generated from the fields of ECCAConfig and GEAConfig, so each field is a flag of
the same name (`--k_prime 4`, `--no-use_hsng`, `--tgte_layers 2`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tipr.ecca.config import ECCAConfig
from tipr.gea.config import GEAConfig
from tipr.models.method import METHODS, Method
DATASETS = ("cuhk-pedes", "icfg-pedes", "rstpreid", "synthpedes")
SETTINGS = ("full", "easy", "medium", "hard")
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")

# settings a preset applies before --config and the command line
PRESETS: dict[str, dict[str, Any]] = {
    # the tiny open_clip config from scratch: a few minutes per epoch of SynthPEDES on a laptop CPU
    "tiny": {"model_name": "tipr-tiny", "pretrained": "none", "image_size": "128x64", "train_batch_size": 32,
             "eval_batch_size": 128, "num_train_epochs": 10, "learning_rate": 5e-4,
             "num_prototypes_s": 64, "num_unified_prototypes": 64, "fusion_heads": 4, "tgte_heads": 4,
             "gif_heads": 4, "checkpointing_steps": 200},
}

ECCA_HELP = {
    "num_prototypes_s": "prototype fusion: number s of learnable prototypes (eq. 1-2; paper: 400)",
    "fusion_heads": "prototype fusion: attention heads",
    "k": "HSNG: k nearest neighbours searched (eq. 3-7; paper: 6)",
    "k_prime": "HSNG: k' reliable neighbours kept for completion (paper: 4)",
    "alpha": "WIGA: prior alpha that a pair matches, targets alpha*I + (1-alpha)*W (eq. 15-16)",
    "tau": "WIGA and EPGA temperature (eq. 19 and 24; paper: 0.02)",
    "num_unified_prototypes": "EPGA: number K of unified prototypes (eq. 20-24)",
    "sinkhorn_iters": "EPGA: Sinkhorn-Knopp iterations",
    "sinkhorn_epsilon": "EPGA: Sinkhorn-Knopp entropy epsilon (at most tau, so the codes are sharper than the "
                        "predictions they train)",
    "fmc_temperature": "FMC: affinity temperature T, S_ij = exp(cos / T) (eq. 10 has T = 1: a near-plain mean)",
    "completed_weight": "weight of a completed pair as an anchor of WIGA and EPGA (1: like a complete pair, as in "
                        "the paper; 0: incomplete samples are only negatives)",
    "completion_warmup_epochs": "epochs in which completed pairs weigh 0, before completed_weight applies",
    "w_wiga": "weight of the WIGA loss (eq. 25)",
    "w_epga": "weight of the EPGA loss (eq. 25)",
    "w_fmc": "weight of the FMC loss (eq. 25)",
    "use_prototype_fusion": "ablation switch: prototype fusion of token features",
    "use_hsng": "ablation switch: HSNG's Jaccard re-ranking (off: plain k' nearest neighbours)",
    "use_fmc": "ablation switch: feature-level completion of missing modalities (off: incomplete pairs dropped)",
    "use_wiga_weights": "ablation switch: WIGA's noun-phrase weights (off: plain InfoNCE)",
    "use_epga": "ablation switch: EPGA's prototype alignment",
    "bank_refresh_epochs": "recompute ECCA's feature bank every this many epochs",
    "knn_index": "the bank's neighbour search: Flat (exact faiss), a faiss factory string such as IVF1024,Flat "
                 "(approximate), or torch (exact, on the training device: for GPUs)",
    "knn_params": "faiss search parameters of --knn_index, e.g. nprobe=16",
}
GEA_HELP = {
    "tal_tau": "TAL temperature",
    "tal_margin": "TAL margin",
    "tgte_layers": "TGTE: gated cross-attention layers",
    "tgte_heads": "TGTE: attention heads",
    "gif_layers": "GIF: fusion transformer layers",
    "gif_heads": "GIF: attention heads",
    "gif_hard_negatives": "GIF: hardest in-batch negatives per query in its loss",
    "rerank_top_k": "GIF: two-tower candidates re-ranked by --eval_rerank",
    "rerank_weight": "GIF: final score = cosine + rerank_weight * fusion score",
    "w_tal": "weight of the two-tower TAL loss",
    "w_gif": "weight of GIF's loss",
    "use_tgte": "ablation switch: Text-Guided Token Enhancement",
    "use_gif": "ablation switch: Generative Intermediate Fusion",
    "generation_steps": "denoising steps of the generated images (0: the generator's own); saved with the model",
}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except None (options whose default the help text explains)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or isinstance(action.default, bool):
            return action.help or ""
        return super()._get_help_string(action)


def parse_size(text: str | Sequence[int]) -> tuple[int, int]:
    """'384x128' (height x width) -> (384, 128)."""
    if not isinstance(text, str):
        values = tuple(int(v) for v in text)
    else:
        try:
            values = tuple(int(v) for v in text.lower().split("x"))
        except ValueError:
            values = ()
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"image size must be HEIGHTxWIDTH in pixels, e.g. 384x128; got {text!r}")
    return values


def _add_config_fields(group, cls, helps: dict[str, str]) -> None:
    for f in dataclasses.fields(cls):
        default = f.default
        text = f"{helps.get(f.name, f.name)} (default: {default}; {cls.__name__}.{f.name})"
        if isinstance(default, bool):
            group.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            group.add_argument(f"--{f.name}", type=type(default), default=None, metavar=type(default).__name__.upper(),
                               help=text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="accelerate launch train/run.py",
        description="Train a text-to-image person retrieval model (ECCA, GEA, ECCA+GEA or the CLIP baseline).",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--config", default=None, help="YAML file of option: value pairs; command-line flags win")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="tiny: the tiny backbone from scratch at 128x64 with a short schedule (laptop CPU)")

    g = p.add_argument_group("method and data")
    g.add_argument("--method", choices=METHODS, default=None, help="what to train (required)")
    g.add_argument("--dataset", default=None, help=f"dataset format: {', '.join(DATASETS)} (required)")
    g.add_argument("--data_root", default=None, help="the dataset folder, or the folder that contains it (required)")
    g.add_argument("--setting", choices=SETTINGS, default="full",
                   help="incomplete-modality partition of the train pairs (complete/image-missing/text-missing: "
                        "full 100/0/0, easy 50/25/25, medium 30/35/35, hard 10/45/45)")
    g.add_argument("--partition_seed", type=int, default=0, help="seed of the partition draw")
    g.add_argument("--partition_by", choices=("image", "pair"), default="image",
                   help="image: all captions of an image share its mode (a missing image cannot come back "
                        "through a sibling caption); pair: every caption drawn on its own")
    g.add_argument("--partition_file", default=None,
                   help="a partition manifest (Partition.save) to use instead of drawing one")
    g.add_argument("--supervised", action=argparse.BooleanOptionalAction, default=None,
                   help="give person ids to the objective (default: yes for clip and gea; ECCA never uses ids)")
    g.add_argument("--loss", choices=("infonce", "tal"), default=None,
                   help="two-tower loss of clip and gea (default: tal; infonce for clip with --no-supervised)")
    g.add_argument("--oracle_neighbours", action="store_true",
                   help="ablation diagnostic: ECCA completes from same-identity neighbours (reads identity labels, "
                        "so the run is no longer unsupervised)")
    g.add_argument("--skip_missing_images", action="store_true",
                   help="drop annotation records whose image file is absent instead of failing")

    g = p.add_argument_group("model")
    g.add_argument("--model_name", default="ViT-B-16",
                   help="open_clip model name, hf-hub:org/repo, or an open_clip JSON config file")
    g.add_argument("--pretrained", default="openai",
                   help="open_clip pretrained tag, a local checkpoint file, or 'none' for random weights")
    g.add_argument("--image_size", type=parse_size, default="384x128", help="HEIGHTxWIDTH of the images")
    g.add_argument("--context_length", type=int, default=77, help="text tokens per caption")

    g = p.add_argument_group("ECCA (fields of tipr.ecca.ECCAConfig)")
    _add_config_fields(g, ECCAConfig, ECCA_HELP)
    g = p.add_argument_group("GEA (fields of tipr.gea.GEAConfig)")
    _add_config_fields(g, GEAConfig, GEA_HELP)

    g = p.add_argument_group("GEA generated images")
    g.add_argument("--generator", default=None,
                   help="diffusers text-to-image pipeline: Hub id or local folder (default: assets/generator if "
                        "present)")
    g.add_argument("--generation_cache", default=None,
                   help="folder of generated images (default: OUTPUT_DIR/generated); fill it ahead with "
                        "python -m tipr.generate")
    g.add_argument("--guidance_scale", type=float, default=None, help="guidance (default: the generator's)")
    g.add_argument("--generation_seed", type=int, default=0, help="base seed of the per-caption seeds")
    g.add_argument("--generation_batch_size", type=int, default=8, help="captions per generator call")

    g = p.add_argument_group("optimisation")
    g.add_argument("--seed", type=int, default=0, help="seed of everything (weights, shuffling, augmentation)")
    g.add_argument("--train_batch_size", type=int, default=64, help="pairs per device per step")
    g.add_argument("--eval_batch_size", type=int, default=256, help="images or captions per device in evaluation")
    g.add_argument("--num_train_epochs", type=int, default=60, help="epochs (bounded by --max_train_steps)")
    g.add_argument("--max_train_steps", type=int, default=None,
                   help="total optimiser steps; overrides --num_train_epochs when set")
    g.add_argument("--gradient_accumulation_steps", type=int, default=1, help="batches per optimiser step")
    g.add_argument("--learning_rate", type=float, default=1e-4, help="Adam learning rate")
    g.add_argument("--adam_beta1", type=float, default=0.9, help="Adam beta1")
    g.add_argument("--adam_beta2", type=float, default=0.999, help="Adam beta2")
    g.add_argument("--adam_epsilon", type=float, default=1e-8, help="Adam epsilon")
    g.add_argument("--adam_weight_decay", type=float, default=0.0, help="Adam (L2) weight decay")
    g.add_argument("--head_lr_scale", type=float, default=1.0,
                   help="learning rate of the method's heads (prototypes, TGTE, GIF) relative to the backbone's")
    g.add_argument("--max_grad_norm", type=float, default=0.0, help="gradient clipping norm (0: no clipping)")
    g.add_argument("--lr_scheduler", choices=LR_SCHEDULERS, default="cosine", help="learning-rate schedule")
    g.add_argument("--lr_warmup_steps", type=int, default=None,
                   help="linear warm-up steps (default: 5 epochs, at most a tenth of the run)")
    g.add_argument("--mixed_precision", choices=("no", "fp16", "bf16"), default=None,
                   help="mixed precision (default: the accelerate config's)")
    g.add_argument("--allow_tf32", action="store_true", help="allow TF32 matmuls on Ampere GPUs")
    g.add_argument("--cpu", action="store_true", help="train on the CPU even where a GPU is available")
    g.add_argument("--dataloader_num_workers", type=int, default=0, help="data-loading worker processes")

    g = p.add_argument_group("evaluation")
    g.add_argument("--validation_epochs", type=int, default=1, help="evaluate on val every N epochs (0: never)")
    g.add_argument("--eval_test", action=argparse.BooleanOptionalAction, default=True,
                   help="evaluate the best model on test at the end")
    g.add_argument("--eval_rerank", action="store_true",
                   help="GEA: re-rank each query's top --rerank_top_k candidates with GIF's fusion score")

    g = p.add_argument_group("output, checkpoints and logging")
    g.add_argument("--output_dir", default=None, help="where everything goes (default: outputs/METHOD-DATASET-SETTING)")
    g.add_argument("--checkpointing_steps", type=int, default=500, help="save a checkpoint-N folder every N steps")
    g.add_argument("--checkpoints_total_limit", type=int, default=None, help="keep at most this many checkpoints")
    g.add_argument("--resume_from_checkpoint", default=None,
                   help="'latest' (the newest checkpoint-N in --output_dir) or a checkpoint folder")
    g.add_argument("--report_to", choices=("tensorboard", "none", "all"), default="tensorboard",
                   help="experiment trackers")
    g.add_argument("--logging_dir", default="logs", help="TensorBoard folder, relative to --output_dir")
    g.add_argument("--tracker_project_name", default="tipr", help="run name given to the trackers")

    g = p.add_argument_group("Hugging Face Hub")
    g.add_argument("--push_to_hub", action="store_true", help="upload the final model folder to the Hub")
    g.add_argument("--hub_model_id", default=None, help="repo id, e.g. user/tipr-ecca-cuhk (required with --push_to_hub)")
    g.add_argument("--hub_token", default=None, help="Hub token (default: the logged-in one)")
    g.add_argument("--hub_private_repo", action="store_true", help="create the repo as private")
    return p


def _config_defaults(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise SystemExit(f"error: --config {path} does not exist") from None
    except yaml.YAMLError as err:
        raise SystemExit(f"error: --config {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise SystemExit(f"error: --config {path} must hold a mapping of option: value, got {type(data).__name__}")
    known = {a.dest for a in parser._actions} - {"help", "config"}
    data = {str(k).lstrip("-").replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SystemExit(f"error: --config {path} has unknown option(s) {unknown}; see --help for the options")
    return data


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse flags over (defaults < preset < --config); check what is required and consistent."""
    parser = build_parser()
    first, _ = parser.parse_known_args(argv)
    layered: dict[str, Any] = {}
    config = _config_defaults(first.config, parser) if first.config else {}
    preset = config.get("preset", first.preset) if first.preset is None else first.preset
    if preset is not None:
        if preset not in PRESETS:
            parser.error(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        layered.update(PRESETS[preset])
    layered.update(config)
    for action in parser._actions:  # YAML gives strings for sizes and may give ints for floats
        if action.dest in layered and action.type is parse_size and layered[action.dest] is not None:
            layered[action.dest] = parse_size(layered[action.dest])
    parser.set_defaults(**layered)
    args = parser.parse_args(argv)
    if isinstance(args.image_size, str):
        args.image_size = parse_size(args.image_size)
    _check(args, parser)
    return args


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    missing = [f"--{name}" for name in ("method", "dataset", "data_root") if getattr(args, name) in (None, "")]
    if missing:
        parser.error(f"{', '.join(missing)} required (on the command line or in --config)")
    if args.method not in METHODS:
        parser.error(f"--method must be one of {', '.join(METHODS)}, got {args.method!r}")
    args.method = Method(args.method)
    if args.method.uses_ecca and args.supervised:
        parser.error("ECCA trains without identity labels: drop --supervised for --method ecca / ecca+gea")
    if args.oracle_neighbours and not args.method.uses_ecca:
        parser.error("--oracle_neighbours changes ECCA's completion: use it with --method ecca or ecca+gea")
    if args.oracle_neighbours and args.push_to_hub:
        parser.error("--oracle_neighbours reads identity labels (an ablation diagnostic): such a model is not ECCA; "
                     "do not --push_to_hub it")
    if args.supervised is None:
        args.supervised = not args.method.uses_ecca
    if args.pretrained is not None and str(args.pretrained).lower() in ("none", "", "null"):
        args.pretrained = None
    for name in ("train_batch_size", "eval_batch_size", "num_train_epochs", "gradient_accumulation_steps",
                 "checkpointing_steps", "generation_batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.max_train_steps is not None and args.max_train_steps < 1:
        parser.error(f"--max_train_steps must be >= 1, got {args.max_train_steps}")
    if args.checkpoints_total_limit is not None and args.checkpoints_total_limit < 1:
        parser.error(f"--checkpoints_total_limit must be >= 1, got {args.checkpoints_total_limit}")
    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id (e.g. your-name/tipr-ecca-cuhk-pedes)")
    if args.output_dir is None:
        args.output_dir = os.path.join("outputs", f"{args.method.replace('+', '-')}-{args.dataset}-{args.setting}")
    try:
        ecca_config(args), gea_config(args)
    except ValueError as err:
        parser.error(str(err))


def _overrides(args: argparse.Namespace, cls) -> dict[str, Any]:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}


def ecca_config(args: argparse.Namespace) -> ECCAConfig | None:
    """ECCAConfig from the flags (None unless the method has ECCA)."""
    return ECCAConfig(**_overrides(args, ECCAConfig)) if Method(args.method).uses_ecca else None


def gea_config(args: argparse.Namespace) -> GEAConfig | None:
    """GEAConfig from the flags (None unless the method has GEA)."""
    return GEAConfig(**_overrides(args, GEAConfig)) if Method(args.method).uses_gea else None


def accelerator_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of `accelerate.Accelerator` for these flags."""
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, ProjectConfiguration

    return {
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "mixed_precision": args.mixed_precision,
        "log_with": None if args.report_to == "none" else args.report_to,
        "project_config": ProjectConfiguration(project_dir=str(args.output_dir),
                                               logging_dir=os.path.join(args.output_dir, args.logging_dir)),
        "cpu": args.cpu,
        # a seeded sampler: epoch e's order depends on (seed, e) only, so a resumed run sees the same batches
        "dataloader_config": DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
        # heads can sit out a step (e.g. GIF without two complete pairs in a batch)
        "kwargs_handlers": [DistributedDataParallelKwargs(find_unused_parameters=True)],
    }


def generation_options(args: argparse.Namespace, accelerator=None) -> dict[str, Any]:
    """Keyword arguments of `prepare_generated` for these flags; exits naming --generator when none is found."""
    from tipr.generation.generated import default_generator

    generator = args.generator or default_generator()
    if generator is None:
        raise SystemExit(f"error: --method {args.method} reads generated images: pass --generator (a diffusers "
                         f"pipeline Hub id such as stabilityai/sd-turbo, or a local pipeline folder such as one saved "
                         f"by train/train_generator.py)")
    return {"generator": generator, "cache_dir": args.generation_cache or os.path.join(args.output_dir, "generated"),
            "steps": args.generation_steps, "guidance_scale": args.guidance_scale, "seed": args.generation_seed,
            "batch_size": args.generation_batch_size, "accelerator": accelerator,
            "device": "cpu" if accelerator is None else accelerator.device,
            "progress": accelerator is None or accelerator.is_main_process}


def model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of TIPRModel for these flags."""
    ecca, gea = ecca_config(args), gea_config(args)
    return {
        "method": Method(args.method).value,
        "backbone": {"name": args.model_name, "pretrained": args.pretrained, "image_size": list(args.image_size),
                     "context_length": args.context_length},
        "ecca": dataclasses.asdict(ecca) if ecca else None,
        "gea": dataclasses.asdict(gea) if gea else None,
    }
