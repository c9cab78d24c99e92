"""Before and after the fixes of ECCA's collapses, on the ECCA ablation's setup (seed 0, 240 steps, lr 5e-4).

    python benchmarks/ecca_collapse.py   # -> docs/results/ecca_collapse.md

Trains (cached in --work, shared with benchmarks/ablations.py: the same SynthPEDES and start) full ECCA with the
paper-literal settings the paper leaves open (Sinkhorn epsilon 0.05 > tau = 0.02, FMC affinities exp(cos), L_FMC
weight 1), then each fix on top of the last, plus WIGA + EPGA on complete pairs with either epsilon, and measures
every model with benchmarks/ecca_diagnostics.py: test R1 / mAP, the mean cosine between a caption and an image of
another person, FMC's largest / smallest neighbour weight, and EPGA's code and prediction entropy and prototype
score spread (image side; the text side is alike).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ablations  # noqa: E402  (the shared benchmark data and start model)

from tipr.data import load_dataset  # noqa: E402
from tipr.study.diagnose import diagnose  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LITERAL = ["--sinkhorn_epsilon", "0.05", "--fmc_temperature", "1", "--w_fmc", "1"]
RUNS = {
    "(d) paper-literal: epsilon 0.05, FMC exp(cos), w_fmc 1": ["--method", "ecca", *LITERAL],
    "(d) + epsilon 0.01": ["--method", "ecca", "--sinkhorn_epsilon", "0.01", "--fmc_temperature", "1", "--w_fmc", "1"],
    "(d) + FMC temperature 0.05": ["--method", "ecca", "--sinkhorn_epsilon", "0.01", "--fmc_temperature", "0.05",
                                   "--w_fmc", "1"],
    "(d) + w_fmc 0.1 (the defaults now)": ["--method", "ecca", "--sinkhorn_epsilon", "0.01", "--fmc_temperature",
                                           "0.05", "--w_fmc", "0.1"],
    "(d) with w_fmc 0 (completion feeds WIGA/EPGA only)": ["--method", "ecca", "--sinkhorn_epsilon", "0.01",
                                                           "--fmc_temperature", "0.05", "--w_fmc", "0"],
    "(b) WIGA + EPGA, complete pairs, epsilon 0.05": ["--method", "ecca", "--no-use_fmc", "--sinkhorn_epsilon", "0.05"],
    "(b) WIGA + EPGA, complete pairs, epsilon 0.01": ["--method", "ecca", "--no-use_fmc", "--sinkhorn_epsilon", "0.01"],
    "(b) without EPGA (WIGA only)": ["--method", "ecca", "--no-use_fmc", "--no-use_epga"],
    "(a) InfoNCE, complete pairs": ["--method", "clip", "--loss", "infonce", "--no-supervised"],
}
COLUMNS = ("R1", "mAP", "random-pair cosine", "FMC max/min weight", "image code entropy",
           "image prediction entropy", "image score spread")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="outputs/ablations", help="the ablations' folder (data, start, runs)")
    p.add_argument("--identities", type=int, default=300)
    p.add_argument("--pretrain_identities", type=int, default=1000)
    p.add_argument("--pretrain_epochs", type=int, default=8)
    p.add_argument("--max_train_steps", type=int, default=240)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "docs" / "results" / "ecca_collapse.md"))
    args = p.parse_args()

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data, init = ablations.benchmark_and_init(work, args.identities, args.pretrain_identities, args.pretrain_epochs)
    common = ["--preset", "tiny", "--dataset", "cuhk-pedes", "--data_root", str(data), "--pretrained",
              init["output_dir"], "--max_train_steps", str(args.max_train_steps), "--train_batch_size", "32",
              "--report_to", "none", "--validation_epochs", "0", "--checkpointing_steps", "100000", "--setting",
              "medium", "--seed", str(args.seed)]
    split = load_dataset("cuhk-pedes", data).test
    rows = {"start (no training here)": diagnose(init["output_dir"], split)}
    for name, flags in RUNS.items():
        rows[name] = diagnose(ablations.train(work, name, common + flags)["output_dir"], split)
    command = "python benchmarks/ecca_collapse.py " + shlex.join(sys.argv[1:])
    lines = [f"<!-- written by `{command}`; do not edit by hand -->", "",
             "# ECCA's collapses on SynthPEDES, before and after the fixes", "",
             f"Medium setting, unsupervised, tiny backbone from the ablations' start, {args.max_train_steps} steps at "
             f"batch 32, lr 5e-4, seed {args.seed}; test split of {args.identities // 10} people. Entropies in nats "
             f"(uniform over the K = 64 prototypes: log 64 = 4.16).", "",
             "| run | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[k]:.3f}" if k in row else "–" for k in COLUMNS) + " |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
