#!/usr/bin/env python
"""Rebuild every asset of the embedded demo from scratch, on CPU, with the project's own commands.

    python assets/build.py                      # everything (about 2.5 hours, one thread per stage)
    python assets/build.py --dry_run            # print the commands only
    python assets/build.py --stages gallery,index,check   # after changing the gallery only

Stages, in order (each one's command is printed before it runs):
  synth      SynthPEDES: python -m tipr.data.synthetic (128x64 pedestrians in the CUHK-PEDES layout)
  pretrain   a tiny CLIP trained with plain InfoNCE on a separate, larger SynthPEDES draw (other seed, other
             people) whose images keep their descriptions and get alt-text captions too (python -m tipr.data.alt_text
             --keep_captions), standing in for the web-pretrained CLIP the papers start from: it reads a two-word
             query as well as a sentence; the demo model starts from it
  generator  the tiny text-to-image pipeline, its text tower from the pretrain stage's CLIP:
             python train/train_generator.py -> assets/generator/
  generate   GEA's intermediate image of every caption: python -m tipr.generate (a cache the trainer reads)
  model      the tiny ECCA+GEA model, fine-tuned on the synth stage's train people with every pair complete
             (the best data the study found: docs/study.md): accelerate launch train/run.py --preset tiny
             -> assets/model/
  gallery    the test split as a gallery with a captions.json (captions, true attributes), some images
             captionless -> assets/gallery/
  index      the gallery embedded with assets/model and indexed with faiss -> assets/gallery/.tipr-index/
  check      every file under assets/ is below --max_mib (a Space takes larger files only through LFS)

Each stage says how long it took, and the build ends with the time of every stage.

The demo model's weights are split into float32 shards below --max_mib (model-0000k-of-0000n.safetensors + their
index, the Hub's layout). A shard still over it holds one tensor larger than the limit (the tiny CLIP's 12 MiB token
embedding): it is stored in float16, as are the generator's weights over the limit (loaded back as float32).
The work folder (default build/assets/) keeps the dataset, the generation cache and the training runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ASSETS = Path(__file__).resolve().parent
REPO = ASSETS.parent
STAGES = ("synth", "pretrain", "generator", "generate", "model", "gallery", "index", "check")
MODEL_FILES = ("config.json", "README.md", "results.json")  # and the weight files, in either layout
SHARD_HEADROOM = 0.9  # of --max_mib: a shard's safetensors header comes on top of its tensors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python assets/build.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    p.add_argument("--work_dir", default=str(REPO / "build" / "assets"), help="dataset, caches and training runs")
    p.add_argument("--assets_dir", default=str(ASSETS), help="where model/, gallery/ and generator/ go")
    p.add_argument("--identities", type=int, default=2500,
                   help="SynthPEDES people of the demo (10%% of them, the test split, form the gallery)")
    p.add_argument("--pretrain_identities", type=int, default=6000, help="SynthPEDES people of the pretrain stage")
    p.add_argument("--pretrain_alt_text", type=int, default=2,
                   help="alt-text captions added to each pretrain image's own descriptions")
    p.add_argument("--generation_steps", type=int, default=10,
                   help="DDIM steps per intermediate image (every train caption gets one: the CPU cost of the build)")
    p.add_argument("--pretrain_epochs", type=int, default=6, help="epochs of the InfoNCE pretraining")
    p.add_argument("--images_per_identity", type=int, default=4)
    p.add_argument("--captions_per_image", type=int, default=2)
    p.add_argument("--captionless", type=float, default=0.2, help="fraction of gallery images shown captionless")
    p.add_argument("--generator_steps", type=int, default=4000, help="train_generator.py --max_train_steps")
    p.add_argument("--method", default="ecca+gea", choices=("ecca+gea", "gea"),
                   help="the demo model's method (gea: supervised, with the people's identities)")
    p.add_argument("--epochs", type=int, default=4, help="train/run.py --num_train_epochs")
    p.add_argument("--learning_rate", type=float, default=1e-4,
                   help="the demo model's backbone learning rate (its heads learn 5 times faster)")
    p.add_argument("--setting", default="full", choices=("full", "easy", "medium", "hard"),
                   help="ECCA's incomplete-data setting for the demo model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max_mib", type=float, default=10.0, help="largest file allowed under assets/, in MiB")
    p.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        p.error(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    return args


# ------------------------------------------------------------------------------------------------ commands
def dataset_dir(args) -> Path:
    return Path(args.work_dir) / "synthpedes" / "CUHK-PEDES"


def commands(args) -> dict[str, list[str]]:
    """The command line of each stage that runs a project script."""
    work, assets, data = Path(args.work_dir), Path(args.assets_dir), dataset_dir(args)
    py = sys.executable
    return {
        "synth": [py, "-m", "tipr.data.synthetic", "--out", str(work / "synthpedes"),
                  "--identities", str(args.identities), "--images_per_identity", str(args.images_per_identity),
                  "--captions_per_image", str(args.captions_per_image), "--image_size", "128x64",
                  "--seed", str(args.seed), "--overwrite"],
        "pretrain-data": [py, "-m", "tipr.data.synthetic", "--out", str(work / "synthpedes-pretrain"),
                          "--identities", str(args.pretrain_identities), "--image_size", "128x64",
                          "--seed", str(args.seed + 1), "--overwrite"],
        "pretrain-captions": [py, "-m", "tipr.data.alt_text",
                              "--source", str(work / "synthpedes-pretrain" / "CUHK-PEDES"),
                              "--out", str(work / "pretrain-mixed"), "--keep_captions",
                              "--captions_per_image", str(args.pretrain_alt_text), "--seed", str(args.seed)],
        "pretrain": [py, str(REPO / "train" / "run.py"), "--preset", "tiny", "--method", "clip", "--loss", "infonce",
                     "--no-supervised", "--dataset", "cuhk-pedes", "--data_root", str(work / "pretrain-mixed"),
                     "--setting", "full", "--num_train_epochs", str(args.pretrain_epochs), "--train_batch_size", "64",
                     "--validation_epochs", "2", "--no-eval_test", "--checkpointing_steps", "500",
                     "--seed", str(args.seed), "--report_to", "none", "--output_dir", str(work / "pretrain-run")],
        "generator": [py, str(REPO / "train" / "train_generator.py"), "--dataset", "cuhk-pedes",
                      "--data_root", str(data), "--output_dir", str(work / "generator-run"),
                      "--text_pretrained", str(work / "pretrain-run"),  # colour words from the tiny CLIP
                      "--max_train_steps", str(args.generator_steps), "--seed", str(args.seed),
                      "--report_to", "none", "--samples_out", str(REPO / "docs" / "generator_samples.png")],
        "generate": [py, "-m", "tipr.generate", "--dataset", "cuhk-pedes", "--data_root", str(data),
                     "--generator", str(assets / "generator"), "--cache", str(work / "generated"),
                     "--split", "all", "--seed", str(args.seed), "--steps", str(args.generation_steps)],
        "model": [shutil.which("accelerate") or "accelerate", "launch", "--num_processes", "1", "--num_machines", "1",
                  "--mixed_precision", "no", "--dynamo_backend", "no",
                  str(REPO / "train" / "run.py"), "--preset", "tiny", "--method", args.method,
                  "--dataset", "cuhk-pedes", "--data_root", str(data), "--setting", args.setting,
                  "--pretrained", str(work / "pretrain-run"),
                  "--generator", str(assets / "generator"), "--generation_cache", str(work / "generated"),
                  "--generation_steps", str(args.generation_steps), "--num_train_epochs", str(args.epochs),
                  "--train_batch_size", "64", "--learning_rate", str(args.learning_rate), "--head_lr_scale", "5",
                  "--seed", str(args.seed), "--cpu",
                  "--report_to", "none", "--output_dir", str(work / "model-run")],
    }


def run(cmd: list[str], dry_run: bool) -> None:
    print("+ " + shlex.join(cmd), flush=True)
    if not dry_run:
        subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})


# ------------------------------------------------------------------------------------------------ files
def shrink_safetensors(folder: str | os.PathLike, max_bytes: int) -> list[Path]:
    """Store in float16 every .safetensors file under ``folder`` larger than ``max_bytes``; returns them."""
    from safetensors.torch import load_file, save_file

    shrunk = []
    for path in sorted(Path(folder).rglob("*.safetensors")):
        if path.stat().st_size <= max_bytes:
            continue
        tensors = load_file(str(path))
        half = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
        save_file(half, str(path), metadata={"format": "pt"})
        shrunk.append(path)
    return shrunk


def _dtypes(path: Path) -> str:
    """The dtypes a safetensors file stores, e.g. "F32" or "F16"."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return ", ".join(sorted({handle.get_slice(k).get_dtype() for k in handle.keys()}))


def oversized(root: str | os.PathLike, max_bytes: int) -> list[tuple[Path, int]]:
    """Files under ``root`` (hidden folders included) larger than ``max_bytes``, with their sizes."""
    return [(p, p.stat().st_size) for p in sorted(Path(root).rglob("*"))
            if p.is_file() and p.stat().st_size > max_bytes and "__pycache__" not in p.parts]


def copy_pipeline(src: Path, dst: Path) -> None:
    """The diffusers pipeline folder only (model_index.json and its components), not logs or checkpoints."""
    index = json.loads((src / "model_index.json").read_text())
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    shutil.copy2(src / "model_index.json", dst / "model_index.json")
    for name, value in index.items():
        if not name.startswith("_") and isinstance(value, list) and (src / name).is_dir():
            shutil.copytree(src / name, dst / name)


def copy_model(src: Path, dst: Path) -> None:
    """The model files of a train/run.py output folder (its weights in either layout), not checkpoints or logs."""
    from tipr.models.weights import INDEX_FILE, weight_files

    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    for path in [*(src / name for name in (*MODEL_FILES, INDEX_FILE)), *weight_files(src)]:
        if path.is_file():
            shutil.copy2(path, dst / path.name)


def shard_model(folder: Path, max_bytes: int) -> list[Path]:
    """Split the model's weights in `folder` into float32 shards below `max_bytes`; returns the weight files.

    The Hub's layout never splits a tensor, so a shard holding one tensor over the limit is stored in float16.
    """
    from tipr.models.weights import reshard

    files = reshard(folder, int(max_bytes * SHARD_HEADROOM))
    shrink_safetensors(folder, max_bytes)
    return files


def build_index(model_dir: Path, gallery_dir: Path):
    """Embed the gallery with the model and save its index next to it (what the app reuses at start)."""
    from tipr.app.encoder import Encoder
    from tipr.app.gallery import embed_gallery, read_gallery
    from tipr.app.index_store import INDEX_DIRNAME
    from tipr.generation.cache import model_fingerprint
    from tipr.models.tipr_model import load_model

    encoder = Encoder(load_model(model_dir))
    source, _ = read_gallery(gallery_dir)
    return embed_gallery(source, model_fingerprint=model_fingerprint(model_dir), embed_images=encoder.images,
                         embed_texts=encoder.texts, save_dir=gallery_dir / INDEX_DIRNAME)


def format_seconds(seconds: float) -> str:
    """e.g. 0.4 s, 42 s, 12 min 05 s, 1 h 02 min."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def run_stage(stage: str, args: argparse.Namespace, cmds: dict[str, list[str]], work: Path, assets: Path,
              max_bytes: int) -> None:
    """One stage: its command (printed first), then what it copies or checks under assets/."""
    if stage == "pretrain":
        run(cmds["pretrain-data"], args.dry_run)
        if not args.dry_run:  # the alt-text writer keeps an existing dataset: this draw may be a new one
            shutil.rmtree(work / "pretrain-mixed", ignore_errors=True)
        run(cmds["pretrain-captions"], args.dry_run)
    if stage in cmds:
        run(cmds[stage], args.dry_run)
    if args.dry_run:
        return
    if stage == "generator":
        copy_pipeline(work / "generator-run", assets / "generator")
        for path in shrink_safetensors(assets / "generator", max_bytes):
            print(f"   stored {path.relative_to(assets)} in float16 ({path.stat().st_size / 2**20:.1f} MiB)")
    elif stage == "model":
        copy_model(work / "model-run", assets / "model")
        for path in shard_model(assets / "model", max_bytes):
            print(f"   {path.relative_to(assets)} ({path.stat().st_size / 2**20:.1f} MiB, "
                  f"{_dtypes(path)})")
    elif stage == "gallery":
        from tipr.app.gallery_export import write_gallery

        shutil.rmtree(assets / "gallery", ignore_errors=True)
        out = write_gallery(dataset_dir(args), assets / "gallery", captionless=args.captionless, seed=args.seed)
        print(f"   {sum(1 for _ in (out / 'imgs').iterdir())} images in {out}")
    elif stage == "index":
        index = build_index(assets / "model", assets / "gallery")
        print(f"   {len(index)} images, {len(index.source.captions)} captions, "
              f"{len(index.source.captionless)} captionless, {len(index.phrases)} noun phrases -> {index.location}")
    elif stage == "check":
        big = oversized(assets, max_bytes)
        if big:
            listing = "\n".join(f"  {p.relative_to(assets)}: {s / 2**20:.2f} MiB" for p, s in big)
            sys.exit(f"files over {args.max_mib:g} MiB under {assets} (a Space needs LFS for them):\n{listing}")
        total = sum(p.stat().st_size for p in assets.rglob("*") if p.is_file())
        print(f"   every file is under {args.max_mib:g} MiB; {total / 2**20:.1f} MiB in all")


# ------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    work, assets = Path(args.work_dir), Path(args.assets_dir)
    max_bytes = int(args.max_mib * 2**20)
    cmds = commands(args)
    took: dict[str, float] = {}
    for stage in [s for s in STAGES if s in args.stages]:
        print(f"== {stage}", flush=True)
        start = time.perf_counter()
        run_stage(stage, args, cmds, work, assets, max_bytes)
        took[stage] = time.perf_counter() - start
        if not args.dry_run:
            print(f"   {stage} took {format_seconds(took[stage])}", flush=True)
    if not args.dry_run:
        print("== time per stage\n" + "\n".join(f"   {s:<10} {format_seconds(t):>9}" for s, t in took.items())
              + f"\n   {'all':<10} {format_seconds(sum(took.values())):>9}")


if __name__ == "__main__":
    main()
