"""Captions per second of tipr.ecca.noun_phrases on synthetic CUHK-PEDES-like captions.

python benchmarks/bench_noun_phrases.py [--captions 68000] [--workers 2]
"""

from __future__ import annotations

import argparse
import random
import time

from tipr.ecca.noun_phrases import extract_noun_phrases

SUBJECTS = ["The man", "A woman", "This young lady", "The pedestrian", "A guy", "The girl", "An older man"]
COLOURS = ["black", "white", "red", "dark blue", "light gray", "grey", "pink", "brown", "green", "khaki"]
TOPS = ["t-shirt", "jacket", "long-sleeved shirt", "hooded sweatshirt", "sweater", "coat", "striped top", "tee"]
BOTTOMS = ["pants", "trousers", "jeans", "shorts", "skirt", "leggings"]
SHOES = ["shoes", "sneakers", "boots", "sandals", "high heels"]
EXTRAS = ["is carrying a {c} backpack on her back", "holds a {c} handbag in his right hand",
          "has long {c} hair tied in a ponytail", "is wearing glasses", "has a {c} bag over the left shoulder",
          "is walking towards the camera", "is looking at a cellphone"]


def synthetic_caption(rng: random.Random) -> str:
    c = lambda: rng.choice(COLOURS)  # noqa: E731
    first = (f"{rng.choice(SUBJECTS)} is wearing a {c()} {rng.choice(TOPS)}, {c()} {rng.choice(BOTTOMS)} "
             f"and a pair of {c()} {rng.choice(SHOES)}.")
    extra = rng.choice(EXTRAS).format(c=c())
    return f"{first} The person {extra}. {rng.choice(['', 'In the picture the background is gray.'])}".strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=68_000, help="number of synthetic captions")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: the library's choice)")
    args = parser.parse_args()
    rng = random.Random(0)
    # an index keeps captions distinct, like a real dataset; it is chunked as a number, not a phrase
    captions = [f"{synthetic_caption(rng)} {i}" for i in range(args.captions)]
    start = time.perf_counter()
    phrases = extract_noun_phrases(captions, workers=args.workers)
    elapsed = time.perf_counter() - start
    mean = sum(len(p) for p in phrases) / len(phrases)
    print(f"{len(captions)} captions in {elapsed:.1f} s: {len(captions) / elapsed:.0f} captions/s "
          f"(workers={args.workers}, {mean:.1f} phrases per caption)")
    print("example:", captions[0], "->", sorted(phrases[0]))


if __name__ == "__main__":
    main()
