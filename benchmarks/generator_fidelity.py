"""Colour fidelity of a text-to-image generator on SynthPEDES: does a caption's image show the described clothes?

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python benchmarks/generator_fidelity.py --generator assets/generator \\
        --data_root build/assets/synthpedes

For every test identity, the captions of its first image (``--captions_per_person``) are generated with the
pipeline's own settings (fixed per-caption seeds, so the figures are deterministic). Every image, generated or
real, is reduced to a colour descriptor: the median CIELAB colour of an upper-body band (chest) and of a
lower-body band (hips, covered by trousers, jeans, shorts and skirts alike) at the figure's centre, where
SynthPEDES draws its people. Then:

- **top-1 / top-5**: how often the generated image's nearest real images by descriptor distance (among the first
  images of all N test identities) include the one its caption describes; chance is 1/N and 5/N;
- **upper / lower colour**: how often the nearest SynthPEDES palette colour of each band is the garment colour
  in the identity's attributes, counted over captions that name that colour.

The ceiling row runs the same with a real image instead of a generated one: the identity's other images
(other views, other light), against the same gallery; the chance row gives 1/N, 5/N and the accuracy of always
naming the most common colour.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

try:
    import tipr  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import tipr  # noqa: F401

import numpy as np
import torch
from PIL import Image

from tipr.data.synthetic_captions import COLOUR_WORDS
from tipr.data.synthetic_render import COLOUR_RGB
from tipr.generation.attribute_warmup import names

SIZE = (64, 32)  # (height, width) at which every image is compared
# (top, bottom) as fractions of the height, (left, right) of the width: SynthPEDES puts the figure's chest and
# hips here whatever its height, position and view (tipr/data/synthetic_render.py: render_pedestrian, _figure)
UPPER_BAND = ((0.32, 0.46), (0.40, 0.60))
LOWER_BAND = ((0.53, 0.62), (0.40, 0.60))


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of sRGB values in [0, 255], shape [..., 3]."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def band_colour(pixels: np.ndarray, band: tuple[tuple[float, float], tuple[float, float]]) -> np.ndarray:
    (y0, y1), (x0, x1) = band
    h, w = pixels.shape[:2]
    region = pixels[round(y0 * h):round(y1 * h), round(x0 * w):round(x1 * w)].reshape(-1, 3)
    return np.median(region, axis=0)


def descriptor(image: Image.Image) -> np.ndarray:
    """[upper L, a, b, lower L, a, b]: the median colour of the chest and hip bands, in CIELAB."""
    pixels = np.asarray(image.convert("RGB").resize(SIZE[::-1], Image.Resampling.BOX), dtype=np.float64)
    return np.concatenate([srgb_to_lab(band_colour(pixels, UPPER_BAND)), srgb_to_lab(band_colour(pixels, LOWER_BAND))])


NAMES = list(COLOUR_RGB)
PALETTE_LAB = srgb_to_lab(np.array([COLOUR_RGB[n] for n in NAMES]))


def colour_name(lab: np.ndarray) -> str:
    return NAMES[int(np.argmin(((PALETTE_LAB - lab) ** 2).sum(-1)))]


def mentions(caption: str, colour: str | None) -> bool:
    return colour is not None and names(caption, COLOUR_WORDS[colour])


def load_people(root: Path, split: str) -> list[list[dict]]:
    """The split's records grouped by identity, each group in file order (SynthPEDES's CUHK-PEDES layout)."""
    folder = root if (root / "reid_raw.json").exists() else root / "CUHK-PEDES"
    records = [r for r in json.loads((folder / "reid_raw.json").read_text()) if r["split"] == split]
    people: dict[int, list[dict]] = {}
    for r in sorted(records, key=lambda r: r["file_path"]):
        r = {**r, "path": folder / "imgs" / r["file_path"]}
        people.setdefault(r["id"], []).append(r)
    if any("attributes" not in r for g in people.values() for r in g):
        raise SystemExit(f"{folder} has no attributes: this benchmark needs SynthPEDES (python -m tipr.data.synthetic)")
    return [people[k] for k in sorted(people)]


def score(queries: np.ndarray, targets: np.ndarray, gallery: np.ndarray) -> tuple[float, float]:
    """Top-1 and top-5 accuracy of retrieving gallery[targets[i]] with queries[i] by Euclidean distance."""
    dist = ((queries[:, None, :] - gallery[None, :, :]) ** 2).sum(-1)
    rank = (dist < dist[np.arange(len(targets)), targets][:, None]).sum(1)  # ties count in the query's favour
    return float((rank < 1).mean()), float((rank < 5).mean())


def naming(descs: np.ndarray, attrs: list[dict], captions: list[str] | None) -> tuple[float, float, int, int]:
    """Upper and lower colour-name accuracy (and counts) over the items whose caption names the colour."""
    out = []
    for part, offset in (("upper", 0), ("lower", 3)):
        hits = [colour_name(d[offset:offset + 3]) == a[f"{part}_colour"] for d, a, c in
                zip(descs, attrs, captions or [None] * len(attrs))
                if c is None or mentions(c, a[f"{part}_colour"])]
        out.append((float(np.mean(hits)) if hits else float("nan"), len(hits)))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generator", action="append", required=True,
                   help="pipeline folder or Hub id (repeat to compare; LABEL=PATH names a row)")
    p.add_argument("--data_root", default="build/assets/synthpedes", help="a SynthPEDES dataset folder")
    p.add_argument("--split", default="test")
    p.add_argument("--num_people", type=int, default=0, help="first N identities of the split (0: all)")
    p.add_argument("--captions_per_person", type=int, default=2, help="captions of each identity's first image")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the pipeline's)")
    p.add_argument("--guidance_scale", type=float, default=None, help="(default: the pipeline's)")
    p.add_argument("--seed_base", type=int, default=0, help="per-caption seeds are caption_seed(caption, seed_base)")
    p.add_argument("--batch_size", type=int, default=50)
    p.add_argument("--save_images", default=None, help="write the generated images of the first generator here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from tipr.generation import load_generator

    people = load_people(Path(args.data_root), args.split)
    if args.num_people:
        people = people[:args.num_people]
    n = len(people)
    gallery = np.stack([descriptor(Image.open(g[0]["path"])) for g in people])
    queries = [(i, c, g[0]["attributes"]) for i, g in enumerate(people) for c in g[0]["captions"][:args.captions_per_person]]
    captions = [c for _, c, _ in queries]
    targets = np.array([i for i, _, _ in queries])
    attrs = [a for _, _, a in queries]

    rows = []
    counts = None
    for spec in args.generator:
        label, _, path = spec.rpartition("=")
        generator = load_generator(path, steps=args.steps, guidance_scale=args.guidance_scale)
        start = time.perf_counter()
        images = generator.generate(captions, seed_base=args.seed_base, size=SIZE, batch_size=args.batch_size,
                                    progress=False)
        seconds = time.perf_counter() - start
        if args.save_images and not rows:
            out = Path(args.save_images)
            out.mkdir(parents=True, exist_ok=True)
            for k, im in enumerate(images):
                im.save(out / f"{k:03d}.png")
        descs = np.stack([descriptor(im) for im in images])
        top1, top5 = score(descs, targets, gallery)
        up, low, n_up, n_low = naming(descs, attrs, captions)
        counts = counts or (n_up, n_low)
        rows.append((f"{label or path} (steps {generator.steps}, guidance {generator.guidance_scale:g})",
                     len(captions), top1, top5, up, low, f"{seconds / len(captions):.3f}"))

    real = [(i, r) for i, g in enumerate(people) for r in g[1:]]
    real_descs = np.stack([descriptor(Image.open(r["path"])) for _, r in real])
    top1, top5 = score(real_descs, np.array([i for i, _ in real]), gallery)
    up, low, _, _ = naming(real_descs, [r["attributes"] for _, r in real], None)
    rows.append(("real: another image of the same person (ceiling)", len(real), top1, top5, up, low, "-"))
    majority = {part: max(np.mean([a[f"{part}_colour"] == name for a in attrs]) for name in NAMES)
                for part in ("upper", "lower")}
    rows.append(("chance (1/N, 5/N; most common colour)", "-", 1 / n, min(1.0, 5 / n), majority["upper"],
                 majority["lower"], "-"))

    print(f"{args.split} split of {args.data_root}: N = {n} identities, gallery = each one's first real image; "
          f"colour names over the {counts[0]} / {counts[1]} captions that name the upper / lower colour\n")
    print("| images | queries | top-1 | top-5 | upper colour | lower colour | s / image |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, q, t1, t5, u, lo, s in rows:
        print(f"| {name} | {q} | {100 * t1:.1f} | {100 * t5:.1f} | {100 * u:.1f} | {100 * lo:.1f} | {s} |")


if __name__ == "__main__":
    main()
