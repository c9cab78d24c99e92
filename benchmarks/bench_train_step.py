"""Training cost per method: seconds per step, pairs per second and peak memory at a backbone, image size, batch
and precision, plus ECCA's bank refresh and (with --evaluate) an evaluation of the test split.

The papers' configuration, random weights (nothing is downloaded), on this machine's CPU:

    OMP_NUM_THREADS=2 python benchmarks/bench_train_step.py --backbone ViT-B-16 --image_size 384x128 \
        --batch_sizes 4 --precisions fp32 bf16 --evaluate

On a GPU: --device cuda --batch_sizes 64 128 --precisions bf16. Each method runs in its own process, so its peak
memory is its own (CPU: peak resident memory of that process; CUDA: peak allocated).
"""

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import torch

from tipr.models.method import METHODS, Method
from tipr.training.throughput import HEADER, default_data_root, fill_placeholder_cache, measure_in_child


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="tipr-tiny", help="open_clip model name, built with random weights")
    parser.add_argument("--image_size", default="64x32", help="HxW; the papers use 384x128")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[8], help="train batch sizes to measure")
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--steps", type=int, default=2, help="timed optimiser steps per method")
    parser.add_argument("--warmup_steps", type=int, default=1, help="untimed steps first")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--evaluate", action="store_true", help="also time an evaluation of the test split")
    parser.add_argument("--identities", type=int, default=None,
                        help="people in the CUHK-PEDES-shaped SynthPEDES (default: enough complete pairs for the steps)")
    parser.add_argument("--work_dir", default=None, help="where the data, generator and cache go (default: a temp dir)")
    parser.add_argument("--generator", default=None,
                        help="GEA's pipeline folder (default: tipr's tiny pipeline with random weights)")
    return parser.parse_args(argv)


def main(argv=None) -> list:
    args = parse_args(argv)
    h, w = (int(v) for v in args.image_size.lower().split("x"))
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="tipr-bench-"))
    steps = args.steps + args.warmup_steps
    # medium keeps 30% of the pairs complete; a CUHK-PEDES-shaped person has about 6 captions
    identities = args.identities or max(12, math.ceil(max(args.batch_sizes) * steps / (0.3 * 6)) + 5)
    data_root = default_data_root(work, identities, (h, w))
    generator = args.generator
    if generator is None and any(Method(m).uses_gea for m in args.methods):
        from tipr.generation.tiny_pipeline import TiprTinyText2ImagePipeline

        generator = str(work / "tiny-pipeline")
        if not (Path(generator) / "model_index.json").is_file():
            TiprTinyText2ImagePipeline.from_scratch(seed=0).save_pretrained(generator)
    if generator is not None:
        from tipr.data import load_dataset

        captions = load_dataset("cuhk-pedes", data_root).all_captions()
        fill_placeholder_cache(generator, work / "generated", captions, (h, w))

    print(f"{args.backbone} at {h}x{w}, random weights, {args.device} ({torch.get_num_threads()} threads, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), {identities} CUHK-PEDES-shaped people, "
          f"{args.steps} timed steps after {args.warmup_steps}")
    print(HEADER, flush=True)
    costs = []
    for batch in args.batch_sizes:
        for precision in args.precisions:
            for method in args.methods:
                argv = ["--method", method, "--dataset", "cuhk-pedes", "--data_root", str(data_root),
                        "--model_name", args.backbone, "--pretrained", "none", "--image_size", f"{h}x{w}",
                        "--train_batch_size", str(batch), "--eval_batch_size", str(max(batch, 16)),
                        "--setting", "medium"]
                if args.backbone == "tipr-tiny":
                    argv = ["--preset", "tiny"] + argv
                if Method(method).uses_gea:
                    argv += ["--generator", generator, "--generation_cache", str(work / "generated")]
                start = time.perf_counter()
                cost = measure_in_child(argv, steps=args.steps, warmup_steps=args.warmup_steps, precision=precision,
                                        device=args.device, evaluate_test=args.evaluate)
                load = os.getloadavg()[0]  # other processes on the same cores slow every figure down
                print(cost.row() + f" <!-- {time.perf_counter() - start:.0f} s in all, load average {load:.1f} on "
                      f"{os.cpu_count()} cores -->", flush=True)
                costs.append(cost)
    return costs


if __name__ == "__main__":
    main()
