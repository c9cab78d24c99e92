"""ECCA and GEA ablations on SynthPEDES with the real trainer, written as Markdown tables.

    python benchmarks/ablations.py --study ecca   # -> docs/results/ecca_ablation.md (240 steps each, lr 5e-4)
    python benchmarks/ablations.py --study ecca --learning_rate 1e-4 --num_train_epochs 4 \
        --out docs/results/ecca_ablation_epochs.md  # 4 epochs over the pairs each variant uses
    python benchmarks/ablations.py --study gea --learning_rate 1e-4 --num_train_epochs 4 --head_lr_scale 10 \
        --out docs/results/gea_ablation.md  # GEA

Every variant is one `train/run.py` process with the tiny backbone at the same step budget, seed and
initialisation; the tables are the test-split metrics each run wrote to its results.json. The initialisation
is a tiny CLIP pretrained with plain InfoNCE on a *separate* SynthPEDES draw (other seed, other identities),
standing in for the web-pretrained CLIP the papers start from. Runs are cached in --work by their flags, so a
variant shared by both studies (ECCA in the medium setting) trains once. Each run uses one thread
(OMP_NUM_THREADS, 1 unless set): on a shared 2-core machine two busy 2-thread torch processes slow each
other down several-fold, while one thread each keeps the per-epoch ratios comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from tipr.study.runs import TrainRun, run_logged
from tipr.study.start_model import ensure_synthpedes as _ensure_synthpedes
from tipr.study.tables import format_mean_std

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("R1", "R5", "R10", "mAP", "mINP")

BASELINE, FULL_ECCA = "(a) InfoNCE, complete pairs only", "(d) ECCA (WIGA+EPGA+FMC with HSNG)"
ECCA_VARIANTS = {
    BASELINE: ["--method", "clip", "--loss", "infonce", "--no-supervised"],
    "(b) WIGA+EPGA, complete pairs only": ["--method", "ecca", "--no-use_fmc"],
    "(c) WIGA+EPGA+FMC, plain nearest neighbours": ["--method", "ecca", "--no-use_hsng"],
    FULL_ECCA: ["--method", "ecca"],
    # diagnostics: what completion could give with perfect neighbours, and each side without EPGA
    "(e) = (d) completing from same-identity neighbours (reads identities)":
        ["--method", "ecca", "--oracle_neighbours"],
    "(b) without EPGA (WIGA, complete pairs only)": ["--method", "ecca", "--no-use_fmc", "--no-use_epga"],
    "(d) without EPGA (WIGA+FMC with HSNG)": ["--method", "ecca", "--no-use_epga"],
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


def ensure_synthpedes(folder: Path, identities: int, seed: int) -> Path:
    return _ensure_synthpedes(folder, identities=identities, seed=seed, image_size="128x64").parent


def train(work: Path, name: str, flags: list[str], version: str = "") -> dict:
    """One trainer run, reused when the same flags (and `version` of what they point at) finished in `work`."""
    return TrainRun(name, flags, work, version).train()


def benchmark_and_init(work: Path, identities: int, pretrain_identities: int, pretrain_epochs: int
                       ) -> tuple[Path, dict]:
    """The ablations' SynthPEDES (seed 0) and their start: a tiny CLIP pretrained on a separate draw (seed 1)."""
    data = ensure_synthpedes(work / "synthpedes", identities, seed=0)
    pre_data = ensure_synthpedes(work / "synthpedes-pretrain", pretrain_identities, seed=1)
    init = train(work, "init: tiny CLIP pretrained with InfoNCE on a separate SynthPEDES draw", [
        "--preset", "tiny", "--method", "clip", "--loss", "infonce", "--no-supervised", "--dataset", "cuhk-pedes",
        "--data_root", str(pre_data), "--setting", "full", "--num_train_epochs", str(pretrain_epochs),
        "--train_batch_size", "64", "--report_to", "none", "--validation_epochs", "0", "--no-eval_test",
        "--checkpointing_steps", "100000"])
    return data, init


def evaluate_init(init: dict, data: Path) -> dict:
    """The shared initialisation on the benchmark's test split, before any training on it."""
    out = Path(init["output_dir"]) / "benchmark_test.json"
    if not out.is_file():
        proc = subprocess.run([sys.executable, "-m", "tipr.evaluate", "--model", init["output_dir"], "--dataset",
                               "cuhk-pedes", "--data_root", str(data), "--json"], capture_output=True, text=True,
                              cwd=ROOT, env=os.environ | {"HF_HUB_OFFLINE": "1"}, check=True)
        out.write_text(proc.stdout.strip().splitlines()[-1])
    return {"results": {"test": json.loads(out.read_text())}, "train_seconds": 0.0, "bank_seconds": 0.0,
            "bank_refreshes": 0, "global_step": 0}


def neighbour_precision(model_dir: str, data: Path) -> str:
    """benchmarks/neighbour_precision.py's table for one model (identities read for the diagnostic only)."""
    out = Path(model_dir) / "neighbour_precision.md"
    if not out.is_file():
        proc = subprocess.run([sys.executable, "benchmarks/neighbour_precision.py", "--model", model_dir,
                               "--data_root", str(data), "--setting", "medium"], capture_output=True, text=True,
                              cwd=ROOT, env=os.environ | {"HF_HUB_OFFLINE": "1"}, check=True)
        out.write_text("\n".join(line for line in proc.stdout.splitlines() if line.startswith("|")))
    return out.read_text()


def intermediate_retrieval(model_dir: str, data: Path, generator: str, cache: Path, steps: int) -> str:
    """benchmarks/intermediate_retrieval.py's table: what the intermediate images tell a model's image encoder."""
    proc = subprocess.run([sys.executable, "benchmarks/intermediate_retrieval.py", "--model", model_dir, "--data_root",
                           str(data), "--generator", generator, "--cache", str(cache), "--steps", str(steps)],
                          capture_output=True, text=True, cwd=ROOT, env=os.environ | {"HF_HUB_OFFLINE": "1"}, check=True)
    return "\n".join(line for line in proc.stdout.splitlines() if line.startswith("|"))


def tgte_gates(model_dir: str) -> str:
    """tanh of each TGTE gate of a saved model (0: the query is plain CLIP's)."""
    from tipr.models.weights import read_weights

    weights = read_weights(model_dir)
    gates = {k: float(v.float().tanh()) for k, v in weights.items() if k.endswith(("attn_gate", "ff_gate"))}
    return ", ".join(f"{k.split('tgte.')[-1]} {v:.3f}" for k, v in sorted(gates.items()))


RERANK_WEIGHTS = (0.0, 0.1, 0.3, 1.0)


def rerank_picked_on_val(run: dict, data: Path, generator: str, cache: Path, steps: int) -> dict:
    """`run` with its test metrics re-scored at the GIF re-rank weight of RERANK_WEIGHTS that is best on the val
    split (R1, then mAP); the run's own test metrics use the model's weight (1.0) and are left in the run."""
    out = Path(run["output_dir"]) / "rerank_picked_on_val.json"
    if not out.is_file():
        import torch

        from tipr.data import load_dataset
        from tipr.evaluate import evaluate, generated_for
        from tipr.models.tipr_model import load_model

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        model = load_model(run["output_dir"], device="cpu")
        dataset = load_dataset("cuhk-pedes", data)

        def scores(split, weights: tuple[float, ...]) -> dict[float, dict]:
            generated = generated_for(model, split.captions, generator=generator, cache_dir=str(cache), steps=steps,
                                      progress=False)
            metrics = {}
            for weight in weights:
                model.gea_config.rerank_weight = weight
                metrics[weight] = evaluate(model, split, generated=generated,
                                           rerank_top_k=model.gea_config.rerank_top_k)
            return metrics

        val = scores(dataset.val, RERANK_WEIGHTS)
        best = max(RERANK_WEIGHTS, key=lambda w: (val[w]["R1"], val[w]["mAP"]))
        out.write_text(json.dumps({"weight": best, "val": {str(w): m for w, m in val.items()},
                                   "test": scores(dataset.test, (best,))[best]}, indent=1))
    picked = json.loads(out.read_text())
    return run | {"results": {**run["results"], "test": picked["test"]}, "rerank_weight": picked["weight"]}


def table(rows: dict[str, list[dict]]) -> str:
    """Test metrics (mean ± std over seeds), ms per training step and seconds per bank refresh."""
    head = "| variant | " + " | ".join(KEYS) + " | ms/step | bank s/refresh |"
    lines = [head, "|---" * (len(KEYS) + 3) + "|"]
    for name, runs in rows.items():
        cells = [format_mean_std([r["results"]["test"][k] for r in runs]) for k in KEYS]
        steps = sum(r["global_step"] for r in runs)
        cells.append(f"{1000 * sum(step_seconds(r) for r in runs) / len(runs):.0f}" if steps else "–")
        refreshes = sum(r["bank_refreshes"] for r in runs)
        cells.append(f"{sum(r['bank_seconds'] for r in runs) / refreshes:.1f}" if refreshes else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def step_seconds(run: dict) -> float:
    """Wall seconds per optimisation step, bank refreshes left out."""
    return (run["train_seconds"] - run["bank_seconds"]) / max(run["global_step"], 1)


def seconds_per_epoch(run: dict, num_pairs: int, batch: int) -> float:
    """Seconds for one pass over all train pairs at this batch size, the bank refresh included."""
    per_refresh = run["bank_seconds"] / run["bank_refreshes"] if run["bank_refreshes"] else 0.0
    return step_seconds(run) * num_pairs / batch + per_refresh


def generation_seconds_per_image(args, data: Path, cache: Path) -> float:
    """Pre-generate every caption of the dataset into the cache and time it (misses only)."""
    from tipr.generation import model_fingerprint

    stamp = cache / f"generation_timing-{model_fingerprint(args.generator).replace('/', '_')}.json"
    if not stamp.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        log = cache.parent / "generate.log"
        seconds = run_logged([sys.executable, "-m", "tipr.generate", "--dataset", "cuhk-pedes", "--data_root", str(data),
                       "--generator", args.generator, "--cache", str(cache), "--split", "all",
                       "--steps", str(args.generation_steps)], log)
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
    p.add_argument("--pretrain_epochs", type=int, default=8)
    p.add_argument("--max_train_steps", type=int, default=240, help="the fixed budget of every variant, in steps")
    p.add_argument("--num_train_epochs", type=int, default=None,
                   help="budget in epochs instead: passes over the pairs each variant can use (complete-only "
                        "variants then take fewer steps, as when incomplete pairs are dropped from the dataset)")
    p.add_argument("--train_batch_size", type=int, default=32)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds of every variant")
    p.add_argument("--generator", default=str(ROOT / "assets" / "generator"), help="GEA's diffusion generator")
    p.add_argument("--generation_steps", type=int, default=10, help="DDIM steps per intermediate image")
    p.add_argument("--learning_rate", type=float, default=None,
                   help="of every variant (default: the tiny preset's; the papers fine-tune CLIP at 1e-4)")
    p.add_argument("--head_lr_scale", type=float, default=None, help="train/run.py --head_lr_scale of every variant")
    p.add_argument("--out", default=None, help="Markdown file (default docs/results/<study>_ablation.md)")
    args = p.parse_args()

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data, init = benchmark_and_init(work, args.identities, args.pretrain_identities, args.pretrain_epochs)
    budget_flags = (["--num_train_epochs", str(args.num_train_epochs)] if args.num_train_epochs
                    else ["--max_train_steps", str(args.max_train_steps)])
    lr_flags = ["--learning_rate", str(args.learning_rate)] if args.learning_rate is not None else []
    common = ["--preset", "tiny", "--dataset", "cuhk-pedes", "--data_root", str(data), "--pretrained",
              init["output_dir"], *budget_flags, "--train_batch_size",
              str(args.train_batch_size), *lr_flags, "--report_to", "none", "--validation_epochs", "0",
              "--checkpointing_steps", "100000"]
    if args.head_lr_scale is not None:
        common += ["--head_lr_scale", str(args.head_lr_scale)]
    command = "python benchmarks/ablations.py " + shlex.join(sys.argv[1:])
    lines = [f"<!-- written by `{command}`; do not edit by hand -->", ""]
    def variants(table_of: dict[str, list[str]], setting: str, extra: list[str] = ()) -> dict[str, list[dict]]:
        from tipr.generation import model_fingerprint
        from tipr.models.method import Method

        def one(flags: list[str], seed: int, name: str) -> dict:
            gea = Method(flags[flags.index("--method") + 1]).uses_gea  # redone when the generator changes
            return train(work, name, common + ["--setting", setting, "--seed", str(seed)] + flags + (
                list(extra) if gea else []), model_fingerprint(args.generator) if gea else "")
        return {name: [one(flags, seed, name) for seed in args.seeds] for name, flags in table_of.items()}

    seeds = f"seeds {', '.join(map(str, args.seeds))} (mean ± std)" if len(args.seeds) > 1 else f"seed {args.seeds[0]}"
    lr = f"learning rate {args.learning_rate:g}" if args.learning_rate else "the tiny preset's learning rate 5e-4"
    if args.head_lr_scale:
        lr += f" ({args.head_lr_scale:g}x for the method's heads)"
    steps = (f"{args.num_train_epochs} epochs over the pairs each variant uses" if args.num_train_epochs
             else f"{args.max_train_steps} steps")
    budget = (f"tiny backbone, {steps} at batch {args.train_batch_size}, {lr}, {seeds}, test split "
              f"of the last {args.identities // 10} of {args.identities} identities; every run starts from the same "
              "tiny CLIP")
    if args.study == "ecca":
        rows = {"initialisation only (no training here)": [evaluate_init(init, data)]} | variants(ECCA_VARIANTS, "medium")
        from tipr.data import load_dataset

        pairs = len(load_dataset("cuhk-pedes", data).train)
        a, d = (sum(seconds_per_epoch(r, pairs, args.train_batch_size) for r in rows[name]) / len(args.seeds)
                for name in (BASELINE, FULL_ECCA))
        lines += [
            "# ECCA ablation on SynthPEDES (medium setting: 30% complete, 35% image missing, 35% text missing)", "",
            f"Unsupervised; {budget}.", "", table(rows), "",
            f"Seconds per epoch over all {pairs} train pairs at batch {args.train_batch_size} (step time x steps + "
            f"one bank refresh): full ECCA {d:.1f} s, (a) {a:.1f} s, ratio {d / a:.2f}x (same machine, same run).",
            "", "How often the k' = 4 completion neighbours of a sample missing a modality are the same person "
            "(`benchmarks/neighbour_precision.py`; identities are read for this diagnostic only):", "",
            "With the initialisation:", "", neighbour_precision(init["output_dir"], data), "",
            f"After full ECCA (seed {args.seeds[0]}):", "",
            neighbour_precision(rows[FULL_ECCA][0]["output_dir"], data),
        ]
    else:
        cache = work / "generation-cache"
        per_image = generation_seconds_per_image(args, data, cache)
        gen = ["--generator", args.generator, "--generation_cache", str(cache), "--generation_steps",
               str(args.generation_steps)]
        full = variants(GEA_VARIANTS, "full", gen)
        incomplete = variants(GEA_INCOMPLETE, "medium", gen)
        picked = {f"{name}, weight picked on val": [rerank_picked_on_val(r, data, args.generator, cache,
                                                                         args.generation_steps) for r in runs]
                  for rows in (full, incomplete) for name, runs in rows.items() if "re-ranking" in name}
        weights = "; ".join(name.removesuffix(", weight picked on val") + ": "
                            + ", ".join(f"{r['rerank_weight']:g}" for r in runs)
                            for name, runs in picked.items())
        baseline, tgte = (full[name][0]["output_dir"] for name in list(GEA_VARIANTS)[:2])
        from tipr.data import load_dataset

        pairs = len(load_dataset("cuhk-pedes", data).train)
        epoch = {name: sum(seconds_per_epoch(r, pairs, args.train_batch_size) for r in runs) / len(runs)
                 for name, runs in full.items()}
        base_epoch = epoch[list(GEA_VARIANTS)[0]]
        lines += [
            "# GEA ablation on SynthPEDES", "",
            f"{budget[0].upper() + budget[1:]}. Intermediate images from `{Path(args.generator).name}`: "
            f"{per_image:.3f} s per image to generate with {args.generation_steps} DDIM steps (CPU, one thread, "
            "batched, cached once).", "",
            "## Full data, supervised (TAL with identities)", "",
            table({"initialisation only (no training here)": [evaluate_init(init, data)]} | full
                  | {k: v for k, v in picked.items() if "medium" not in k}), "",
            "Re-ranking rows score with the model's weight (1: cosine + GIF score); the \"weight picked on val\" "
            f"rows re-score the same runs at the weight of {', '.join(map(str, RERANK_WEIGHTS))} that is best on "
            f"the val split (R1, then mAP), per seed: {weights}.", "",
            f"Seconds per epoch over all {pairs} train pairs at batch {args.train_batch_size}: " + ", ".join(
                f"{name} {sec:.1f} s ({sec / base_epoch:.1f}x)" for name, sec in epoch.items()) + ".", "",
            f"TGTE's gates after training (tanh, seed {args.seeds[0]}, \"+ TGTE\"): {tgte_gates(tgte)}.", "",
            "## Medium incomplete setting, unsupervised", "",
            table(incomplete | {k: v for k, v in picked.items() if "medium" in k}), "",
            "## What the intermediate images carry", "",
            f"Test captions as queries through the baseline's two towers (seed {args.seeds[0]}), "
            "`benchmarks/intermediate_retrieval.py`: the caption, its intermediate image through the image encoder, "
            "the same images given to the wrong captions, and the untrained mean of caption and image features.", "",
            intermediate_retrieval(baseline, data, args.generator, cache, args.generation_steps),
        ]
    out = Path(args.out) if args.out else ROOT / "docs" / "results" / f"{args.study}_ablation.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
