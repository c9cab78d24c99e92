"""Collapse diagnostics of trained models on a split: do EPGA's codes and FMC's completions still discriminate?

    python benchmarks/ecca_diagnostics.py --data_root DIR --model outputs/ablations/run-A outputs/ablations/run-B

For each model, on the test split: R1 and mAP; the mean cosine between a caption and an image of another
person (near 1: the embedding collapsed into a cone); FMC's largest / smallest completion weight over each
caption's k' nearest images, at the model's affinity temperature (1: completion is a plain mean); and for
ECCA models, EPGA's mean prediction and Sinkhorn-code entropy over the K unified prototypes (log K: uniform)
with the mean per-row spread of the prototype scores. Identities are read for the metrics only.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from tipr.data import load_dataset
from tipr.study.diagnose import diagnose


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="+", required=True, help="tipr model folders")
    p.add_argument("--name", nargs="*", default=None, help="a row name per model (default: the folder)")
    p.add_argument("--dataset", default="cuhk-pedes")
    p.add_argument("--data_root", required=True)
    p.add_argument("--split", choices=("val", "test"), default="test")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    names = args.name or [Path(m).name for m in args.model]
    if len(names) != len(args.model):
        raise SystemExit(f"error: {len(names)} --name for {len(args.model)} --model")
    split = getattr(load_dataset(args.dataset, args.data_root), args.split)
    rows = {name: diagnose(model, split) for name, model in zip(names, args.model)}
    keys = list(dict.fromkeys(k for row in rows.values() for k in row))
    print("| model | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[k]:.3f}" if k in row else "–" for k in keys) + " |")


if __name__ == "__main__":
    main()
