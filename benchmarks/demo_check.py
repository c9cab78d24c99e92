"""The demo's figures: how the model in assets/model does on the gallery in assets/gallery, beside references.

    OMP_NUM_THREADS=1 python benchmarks/demo_check.py --out docs/results/demo.md

Prints (and writes to --out) the model's R1/R5/mAP/mINP on the gallery's own captions beside the attribute
oracle's, the share of the top-5 results of the free-form queries in benchmarks/data/demo_queries.json showing
each attribute a query names beside chance, and how alike the Captionless tab's HSNG neighbours are to the
captionless image beside any gallery caption. The gallery's captions.json must record each image's true
attributes (python assets/build.py --stages gallery,index writes them). See docs/app.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from tipr.app.cli import AppConfig
from tipr.app.demo_check import (DemoCheckError, image_attributes, load_demo, neighbour_likeness, rank_captions,
                                 rank_queries, report)
from tipr.app.demo_queries import QueriesError, read_queries



def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="assets/model", help="a tipr model folder or Hub id")
    p.add_argument("--gallery", default="assets/gallery",
                   help="a gallery folder whose captions.json records true attributes")
    p.add_argument("--queries", default="benchmarks/data/demo_queries.json",
                   help="free-form queries with their attributes (tipr-demo-queries/1)")
    p.add_argument("--top", type=int, default=5, help="results per free-form query that are scored")
    p.add_argument("--cache_dir", default=AppConfig.cache_dir, help="where the app keeps indexes it embeds")
    p.add_argument("--seed", type=int, default=0, help="the oracle's tie-breaking order")
    p.add_argument("--out", default=None, help="also write the Markdown here (e.g. docs/results/demo.md)")
    args = p.parse_args(argv)
    try:
        queries = read_queries(args.queries)
        searcher, ecca = load_demo(args.model, args.gallery, cache_dir=args.cache_dir)
        images = image_attributes(searcher.index.source)
        ranking = rank_captions(searcher, images, seed=args.seed)
        scores = rank_queries(searcher, queries, images, k=args.top)
        likeness = neighbour_likeness(searcher.index, images, ecca)
    except (DemoCheckError, QueriesError, FileNotFoundError) as err:
        p.exit(2, f"error: {err}\n")
    command = shlex.join(["python", "benchmarks/demo_check.py", *(sys.argv[1:] if argv is None else argv)])
    header = (f"<!-- written by {command} -->\n# The demo's figures\n\nModel `{args.model}`, gallery "
              f"`{args.gallery}`, queries `{args.queries}`.\n")
    text = report(ranking, scores, likeness, k=args.top, header=header)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
