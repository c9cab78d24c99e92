"""ECCA and GEA ablations on SynthPEDES with the real trainer, written as Markdown tables.

    python benchmarks/ablations.py --study ecca   # -> docs/results/ecca_ablation.md
    python benchmarks/ablations.py --study gea    # -> docs/results/gea_ablation.md

Every variant is one `train/run.py` process with the tiny backbone at the same step budget, seed and
initialisation; the tables are the test-split metrics each run wrote to its results.json. The initialisation
is a tiny CLIP pretrained with plain InfoNCE on a *separate* SynthPEDES draw (other seed, other identities),
standing in for the web-pretrained CLIP the papers start from. Runs are cached in --work by their flags, so a
variant shared by both studies (ECCA in the medium setting) trains once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("R1", "R5", "R10", "mAP", "mINP")

ECCA_VARIANTS = {
    "(a) InfoNCE, complete pairs only": ["--method", "clip", "--loss", "infonce", "--no-supervised"],
    "(b) WIGA+EPGA, complete pairs only": ["--method", "ecca", "--no-use_fmc"],
    "(c) WIGA+EPGA+FMC, plain nearest neighbours": ["--method", "ecca", "--no-use_hsng"],
    "(d) ECCA (WIGA+EPGA+FMC with HSNG)": ["--method", "ecca"],
}
GEA_VARIANTS = {
    "CLIP baseline + TAL": ["--method", "clip", "--loss", "tal", "--supervised"],
    "+ TGTE": ["--method", "gea", "--no-use_gif", "--supervised"],
    "+ GIF (re-ranking top-10)": ["--method", "gea", "--no-use_tgte", "--supervised", "--eval_rerank"],
    "full GEA (TGTE + GIF re-ranking)": ["--method", "gea", "--supervised", "--eval_rerank"],
}
GEA_INCOMPLETE = {
    "ECCA (medium)": ["--method", "ecca"],
    "ECCA+GEA (medium, GIF re-ranking)": ["--method", "ecca+gea", "--eval_rerank"],
}


def run(cmd: list[str], log: Path) -> float:
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                              env=os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    if proc.returncode:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"command failed ({proc.returncode}): {shlex.join(cmd)}\n--- {log} ---\n{tail}")
    return time.perf_counter() - start


def ensure_synthpedes(folder: Path, identities: int, seed: int) -> Path:
    if not (folder / "CUHK-PEDES" / "reid_raw.json").is_file():
        run([sys.executable, "-m", "tipr.data.synthetic", "--out", str(folder), "--identities", str(identities),
             "--seed", str(seed), "--image_size", "128x64"], folder.with_suffix(".log"))
    return folder


def train(work: Path, name: str, flags: list[str]) -> dict:
    """One trainer run, reused when the same flags already finished in `work`."""
    key = hashlib.sha1(json.dumps(flags).encode()).hexdigest()[:10]
    out = work / f"run-{key}"
    results = out / "results.json"
    if not results.is_file():
        out.mkdir(parents=True, exist_ok=True)
        (out / "flags.json").write_text(json.dumps({"name": name, "flags": flags}, indent=1))
        print(f"training {name} ...", flush=True)
        run([sys.executable, "train/run.py", *flags, "--output_dir", str(out)], out / "train.log")
    summary = json.loads(results.read_text())
    summary["output_dir"] = str(out)
    return summary


def table(rows: dict[str, dict], extra: str | None = None) -> str:
    head = "| variant | " + " | ".join(KEYS) + (f" | {extra} |" if extra else " |")
    lines = [head, "|---" * (len(KEYS) + 1 + bool(extra)) + "|"]
    for name, r in rows.items():
        cells = [f"{r['results']['test'][k]:.2f}" for k in KEYS]
        if extra:
            cells.append(f"{r['seconds_per_epoch']:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def timing(rows: dict[str, dict]) -> dict[str, dict]:
    for r in rows.values():
        r["seconds_per_epoch"] = r["train_seconds"] / max(r["epochs_trained"], 1e-9)
    return rows


def generation_seconds_per_image(args, data: Path, cache: Path) -> float:
    """Pre-generate every caption of the dataset into the cache and time it (misses only)."""
    stamp = cache / "generation_timing.json"
    if not stamp.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        log = cache.parent / "generate.log"
        seconds = run([sys.executable, "-m", "tipr.generate", "--dataset", "cuhk-pedes", "--data_root", str(data),
                       "--generator", args.generator, "--cache", str(cache), "--split", "all"], log)
        from tipr.data import load_dataset

        ds = load_dataset("cuhk-pedes", data)
        count = len({r.caption for r in ds.train} | set(ds.val.captions) | set(ds.test.captions))
        stamp.write_text(json.dumps({"seconds": seconds, "captions": count}))
    info = json.loads(stamp.read_text())
    return info["seconds"] / max(info["captions"], 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", choices=("ecca", "gea"), required=True)
    p.add_argument("--work", default="outputs/ablations", help="folder for datasets, runs and logs (reused)")
    p.add_argument("--identities", type=int, default=300, help="SynthPEDES identities of the benchmark")
    p.add_argument("--pretrain_identities", type=int, default=1000, help="SynthPEDES identities for the init")
    p.add_argument("--pretrain_epochs", type=int, default=3)
    p.add_argument("--max_train_steps", type=int, default=240, help="the fixed budget of every variant")
    p.add_argument("--train_batch_size", type=int, default=32)
    p.add_argument("--generator", default=str(ROOT / "assets" / "generator"), help="GEA's diffusion generator")
    p.add_argument("--out", default=None, help="Markdown file (default docs/results/<study>_ablation.md)")
    args = p.parse_args()

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = ensure_synthpedes(work / "synthpedes", args.identities, seed=0)
    pre_data = ensure_synthpedes(work / "synthpedes-pretrain", args.pretrain_identities, seed=1)
    init = train(work, "init: tiny CLIP pretrained with InfoNCE on a separate SynthPEDES draw", [
        "--preset", "tiny", "--method", "clip", "--loss", "infonce", "--no-supervised", "--dataset", "cuhk-pedes",
        "--data_root", str(pre_data), "--setting", "full", "--num_train_epochs", str(args.pretrain_epochs),
        "--train_batch_size", "64", "--report_to", "none", "--validation_epochs", "0", "--no-eval_test",
        "--checkpointing_steps", "100000"])
    common = ["--preset", "tiny", "--dataset", "cuhk-pedes", "--data_root", str(data), "--pretrained",
              init["output_dir"], "--max_train_steps", str(args.max_train_steps), "--train_batch_size",
              str(args.train_batch_size), "--seed", "0", "--report_to", "none", "--validation_epochs", "0",
              "--checkpointing_steps", "100000"]
    command = "python benchmarks/ablations.py " + shlex.join(sys.argv[1:])
    lines = [f"<!-- written by `{command}`; do not edit by hand -->", ""]
    if args.study == "ecca":
        rows = timing({name: train(work, name, common + ["--setting", "medium"] + flags)
                       for name, flags in ECCA_VARIANTS.items()})
        a, d = rows[list(rows)[0]], rows[list(rows)[-1]]
        lines += [
            "# ECCA ablation on SynthPEDES (medium setting: 30% complete, 35% image missing, 35% text missing)", "",
            f"Unsupervised, tiny backbone, {args.max_train_steps} steps of batch {args.train_batch_size}, test split "
            f"of {args.identities} identities; all variants start from the same tiny CLIP.", "",
            table(rows, extra="s/epoch"), "",
            f"Seconds per epoch, full ECCA / (a): {d['seconds_per_epoch']:.1f} / {a['seconds_per_epoch']:.1f} = "
            f"{d['seconds_per_epoch'] / a['seconds_per_epoch']:.2f}x at the same batch size (one machine, one run).",
        ]
    else:
        cache = work / "generation-cache"
        per_image = generation_seconds_per_image(args, data, cache)
        gen = ["--generator", args.generator, "--generation_cache", str(cache)]
        full = timing({name: train(work, name, common + ["--setting", "full"] + flags + (
            gen if "gea" in flags[1] else [])) for name, flags in GEA_VARIANTS.items()})
        medium = timing({name: train(work, name, common + ["--setting", "medium"] + flags + (
            gen if "gea" in flags[1] else [])) for name, flags in GEA_INCOMPLETE.items()})
        lines += [
            "# GEA ablation on SynthPEDES", "",
            f"Tiny backbone, {args.max_train_steps} steps of batch {args.train_batch_size}, test split of "
            f"{args.identities} identities; all variants start from the same tiny CLIP. Intermediate images from "
            f"`{Path(args.generator).name}`: {per_image:.3f} s per image to generate (CPU, batched, cached once).", "",
            "## Full data, supervised (TAL with identities)", "", table(full, extra="s/epoch"), "",
            "## Medium incomplete setting, unsupervised", "", table(medium, extra="s/epoch"),
        ]
    out = Path(args.out) if args.out else ROOT / "docs" / "results" / f"{args.study}_ablation.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
