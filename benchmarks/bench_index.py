"""Large-gallery search: text query -> top-10 latency, recall@10 against exact search, resident memory and
start-up time of an index folder, written as a Markdown table.

    python benchmarks/bench_index.py --synthetic_sizes 100000 1000000 --real_images 100000 \
        --out docs/results/index_benchmark.md

Synthetic galleries are clustered 512-d features (ViT-B/16's width; about 8 images per person, people in
look-alike groups), built into an index folder from shards exactly as `python -m tipr.index` builds one; their
queries are SynthPEDES captions encoded by --model (the timed text encoding) whose search uses a synthetic query
vector of the gallery's width. The real gallery is a SynthPEDES render embedded with --model by
`python -m tipr.index`, searched with the encoded captions themselves. Each measurement runs in a fresh
process: start-up is from that process's start to its first answered query (imports, model, index), memory
is its resident set after all the queries. Builds are cached in --work; delete a folder to build it again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--synthetic_sizes", type=int, nargs="*", default=[100_000, 1_000_000],
                   help="gallery sizes of clustered synthetic features")
    p.add_argument("--dim", type=int, default=512, help="width of the synthetic features")
    p.add_argument("--real_images", type=int, default=100_000,
                   help="images of the real SynthPEDES gallery (4 per person; 0: none)")
    p.add_argument("--app_size", type=int, default=1_000_000,
                   help="images of the synthetic index (at --model's width, rows showing rendered crops) that "
                        "`python app.py --gallery` is timed on (0: skip)")
    p.add_argument("--image_size", type=int, nargs=2, default=(128, 64), help="rendered SynthPEDES size (H W)")
    p.add_argument("--model", default=str(ROOT / "assets" / "model"), help="the tipr model that encodes queries")
    p.add_argument("--index", default=None, help="faiss factory string (default: tipr's choice by size)")
    p.add_argument("--queries", type=int, default=200, help="timed queries per gallery")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--work", default=str(ROOT / ".cache" / "bench_index"), help="cached galleries and indexes")
    p.add_argument("--out", default=None, help="Markdown file for the table (default: print only)")
    p.add_argument("--probe", default=None, help=argparse.SUPPRESS)  # internal: measure one index folder
    p.add_argument("--started", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--vectors", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def probe_main(args: argparse.Namespace) -> None:
    from tipr.index.benchmark import probe, query_captions

    texts = query_captions(args.queries)
    vectors = np.load(args.vectors) if args.vectors else None
    started = time.perf_counter() - (time.time() - args.started)  # count the imports since the process began
    print(json.dumps(probe(args.probe, args.model, texts, vectors, k=args.k, started=started)))


def measure(folder: Path, args: argparse.Namespace, vectors: Path | None) -> dict:
    cmd = [sys.executable, __file__, "--probe", str(folder), "--model", args.model, "--queries", str(args.queries),
           "--k", str(args.k), "--started", repr(time.time())] + (["--vectors", str(vectors)] if vectors else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise RuntimeError(f"measuring {folder} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def synthetic(size: int, args: argparse.Namespace) -> dict:
    from tipr.index.benchmark import clustered_queries, person_centres, synthetic_index

    folder = Path(args.work) / f"synthetic-{size}-{args.dim}d-{args.index or 'auto'}"
    if not (folder / "manifest.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        start = time.perf_counter()
        synthetic_index(folder, size, args.dim, factory=args.index)
        print(f"built {folder} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    vectors = folder / f"queries-{args.queries}.npy"
    np.save(vectors, clustered_queries(args.queries, person_centres(max(1, size // 8), args.dim)))
    return {"gallery": f"synthetic clustered {args.dim}-d", **measure(folder, args, vectors)}


def render(images: int, args: argparse.Namespace) -> Path:
    """A SynthPEDES render with about ``images`` images (4 per person); returns its imgs folder."""
    from tipr.data.synthetic import generate_synthpedes

    people = max(3, images // 4)
    data = Path(args.work) / f"synthpedes-{people}-{args.image_size[0]}x{args.image_size[1]}"
    if not (data / "CUHK-PEDES" / "reid_raw.json").is_file():
        generate_synthpedes(data, identities=people, image_size=tuple(args.image_size), overwrite=True)
    return data / "CUHK-PEDES" / "imgs"


def real(images: int, args: argparse.Namespace) -> dict:
    gallery = render(images, args)
    folder = Path(args.work) / f"{gallery.parent.parent.name}-index-{args.index or 'auto'}"
    cmd = [sys.executable, "-m", "tipr.index", "--model", args.model, "--gallery", str(gallery),
           "--out", str(folder)] + (["--index", args.index] if args.index else [])
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # embeds only what is missing
    return {"gallery": "SynthPEDES, embedded by the demo model", **measure(folder, args, None)}


def app(size: int, args: argparse.Namespace) -> dict:
    from tipr.generation.cache import model_fingerprint
    from tipr.index.benchmark import app_first_answer, query_captions, synthetic_index
    from tipr.index.sources import list_gallery
    from tipr.models.tipr_model import load_model

    dim = load_model(args.model).backbone.embed_dim
    fingerprint = model_fingerprint(args.model)
    folder = Path(args.work) / f"app-synthetic-{size}-{dim}d-{fingerprint.replace('@', '-')}-{args.index or 'auto'}"
    if not (folder / "manifest.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        crops = list_gallery(render(min(400, max(12, size // 100)), args))  # rendered crops the rows show
        start = time.perf_counter()
        synthetic_index(folder, size, dim, factory=args.index, model=fingerprint, root=crops.root, images=crops.images)
        print(f"built {folder} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    result = app_first_answer(folder, args.model, queries=query_captions(21))
    return {"gallery": f"synthetic clustered {dim}-d", "images": size, **result}


def table(rows: list[dict], k: int) -> str:
    head = ("| gallery | images | index | p50 ms | p95 ms | recall@{k} | resident MiB | start-up s (CPU s) |\n"
            "|---|---:|---|---:|---:|---:|---:|---:|\n").format(k=k)
    lines = []
    for r in rows:
        index = r["factory"] + (f", nprobe {r['nprobe']}" if r["nprobe"] else "") + (
            f", re-score top {r['rescore']}k" if r["rescore"] else "")
        lines.append(f"| {r['gallery']} | {r['images']:,} | {index} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                     f"{r[f'recall@{k}']:.3f} | {r['rss_mb']:.0f} | {r['first_answer_s']:.1f} "
                     f"({r['first_answer_cpu_s']:.1f}) |")
    return head + "\n".join(lines) + "\n"


def app_table(rows: list[dict]) -> str:
    head = ("| gallery | images | first answer after start s (CPU s) | p50 ms | p95 ms | resident MiB |\n"
            "|---|---:|---:|---:|---:|---:|\n")
    return head + "\n".join(f"| {r['gallery']} | {r['images']:,} | {r['first_answer_s']:.1f} "
                             f"({r['first_answer_cpu_s']:.1f}) | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
                             f"{r['rss_mb']:.0f} |" for r in rows) + "\n"


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.probe:
        return probe_main(args)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    rows = [synthetic(size, args) for size in args.synthetic_sizes]
    served = app(args.app_size, args) if args.app_size else None
    if args.real_images:
        rows.append(real(args.real_images, args))
    text = table(rows, args.k)
    if served:
        text += ("\n`python app.py --gallery INDEX_FOLDER --generator none`, text searches through the API "
                 "(gradio_client, end to end):\n\n" + app_table([served]))
    print(text)
    if args.out:
        cmd = "python benchmarks/bench_index.py " + " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(f"Measured by `{cmd}` on {os.cpu_count()} CPU cores "
                                  f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}).\n\n{text}")
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
