"""SynthPEDES: procedurally rendered pedestrians with attribute-grammar captions, in the CUHK-PEDES layout.

    python -m tipr.data.synthetic --out DIR --identities 1000 --seed 0

writes ``DIR/CUHK-PEDES/reid_raw.json`` (records ``split``, ``captions``, ``file_path``, ``processed_tokens``,
``id`` from 1, plus ``attributes``) and ``DIR/CUHK-PEDES/imgs/SynthPEDES/*.png``, so every reader and
trainer path is the real CUHK-PEDES one. Identities are split 80/10/10 by id (train ids first, as in
CUHK-PEDES). Every identity and image draws from its own seed (seed, id, image index): the bytes do not
depend on the number of workers.

    python -m tipr.data.synthetic --out DIR --identities 20 --profile icfg-pedes

shapes it like a public dataset instead (see synthetic_profiles.py and docs/data.md) and writes that
dataset's own files: ``CUHK-PEDES/reid_raw.json``, ``ICFG-PEDES/ICFG-PEDES.json`` or
``RSTPReid/data_captions.json`` with their fields, id numbering and image folders, and no ``attributes``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tipr.data.synthetic_captions import caption_image
from tipr.data.synthetic_profiles import PROFILES, DatasetProfile, Person, get_profile
from tipr.data.synthetic_render import COLOUR_RGB, HAIR_RGB, SKIN_RGB, jitter, render_pedestrian

DATASET_FOLDER = "CUHK-PEDES"
IMAGE_FOLDER = "SynthPEDES"
MARKER = "synthpedes.json"  # provenance; also marks a folder this module may overwrite
VIEWS = ("front", "back", "side")
# value -> weight; popular values are shared by many identities, so one attribute never identifies a person
_CLOTHES = {"black": 3.0, "white": 2.2, "grey": 2.0, "blue": 1.4, "navy": 1.2, "red": 1.2, "light blue": 0.8,
            "green": 0.8, "yellow": 0.6, "orange": 0.5, "pink": 0.7, "purple": 0.6, "brown": 0.8, "beige": 1.0}
_TROUSERS = {"black": 3.0, "grey": 2.0, "navy": 1.5, "beige": 1.5, "brown": 1.0, "white": 0.6, "blue": 0.6,
             "green": 0.4, "red": 0.3, "pink": 0.3}
_JEANS = {"blue": 3.0, "navy": 1.5, "light blue": 1.2, "black": 1.0, "grey": 0.5}
_SHOES = {"black": 3.0, "white": 2.5, "grey": 0.8, "brown": 1.0, "red": 0.4, "blue": 0.4, "pink": 0.3,
          "beige": 0.5}
_HAIR_STYLE = {"male": {"short": 0.75, "shoulder-length": 0.12, "long": 0.05, "ponytail": 0.05, "bun": 0.03},
               "female": {"short": 0.12, "shoulder-length": 0.25, "long": 0.33, "ponytail": 0.2, "bun": 0.1}}
_LOWER = {"male": {"trousers": 0.5, "jeans": 0.35, "shorts": 0.15},
          "female": {"trousers": 0.25, "jeans": 0.3, "shorts": 0.15, "skirt": 0.3}}


def _choice(rng: np.random.Generator, weights: dict[str, float], exclude: str | None = None) -> str:
    names = [n for n in weights if n != exclude]
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def sample_identity(seed: int, pid: int) -> dict[str, Any]:
    """The fixed attributes of person ``pid``: what every image of them shows."""
    rng = _rng(seed, pid, 0)
    gender = _choice(rng, {"male": 1, "female": 1})
    upper_pattern = _choice(rng, {"plain": 0.55, "stripes": 0.15, "plaid": 0.12, "logo": 0.18})
    upper_colour = _choice(rng, _CLOTHES)
    lower_type = _choice(rng, _LOWER[gender])
    bag_type = _choice(rng, {"none": 0.3, "backpack": 0.3, "shoulder bag": 0.2,
                             "handbag": 0.2 if gender == "female" else 0.06})
    headwear = _choice(rng, {"none": 0.7, "cap": 0.18, "hat": 0.12})
    return {
        "gender": gender,
        "build": _choice(rng, {"slim": 0.3, "average": 0.5, "heavy": 0.2}),
        "skin": _choice(rng, {"light": 0.5, "medium": 0.3, "dark": 0.2}),
        "hair_style": _choice(rng, _HAIR_STYLE[gender]),
        "hair_colour": _choice(rng, {"black": 0.45, "brown": 0.3, "blonde": 0.12, "grey": 0.08, "red": 0.05}),
        "upper_type": _choice(rng, {"t-shirt": 1.2, "shirt": 1.0, "jacket": 1.0, "sweater": 0.8, "coat": 0.7}),
        "upper_colour": upper_colour,
        "upper_pattern": upper_pattern,
        "upper_pattern_colour": None if upper_pattern == "plain" else _choice(rng, _CLOTHES, exclude=upper_colour),
        "lower_type": lower_type,
        "lower_colour": _choice(rng, _JEANS if lower_type == "jeans" else _TROUSERS if lower_type == "trousers"
                                else _CLOTHES),
        "shoes_colour": _choice(rng, _SHOES),
        "bag_type": bag_type,
        "bag_colour": None if bag_type == "none" else _choice(rng, _CLOTHES),
        "headwear": headwear,
        "headwear_colour": None if headwear == "none" else _choice(rng, _CLOTHES),
        "glasses": bool(rng.random() < 0.25),
        "carry": _choice(rng, {"none": 0.6, "umbrella": 0.13, "phone": 0.15, "bottle": 0.12}),
    }


def _palette(seed: int, pid: int, a: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    """This identity's own shade of each of its colours."""
    rng = _rng(seed, pid, 1)
    pal = {"skin": jitter(SKIN_RGB[a["skin"]], rng, 10), "hair": jitter(HAIR_RGB[a["hair_colour"]], rng, 8),
           "umbrella": jitter(COLOUR_RGB[("black", "navy", "red", "grey")[int(rng.integers(4))]], rng)}
    for part in ("upper", "lower", "shoes", "bag", "headwear"):
        colour = a[f"{part}_colour"]
        if colour is not None:
            pal[part] = jitter(COLOUR_RGB[colour], rng)
    if a["upper_pattern_colour"] is not None:
        pal["pattern"] = jitter(COLOUR_RGB[a["upper_pattern_colour"]], rng)
    return pal


def visible_groups(a: dict[str, Any], view: str, occluded: str | None = None) -> set[str]:
    """The attribute groups a viewer of this image can describe."""
    groups = {"gender", "build", "hair", "upper", "lower", "shoes", "view"}
    groups |= {g for g, key in (("bag", "bag_type"), ("headwear", "headwear"), ("carry", "carry"))
               if a[key] != "none"}
    if a["carry"] == "phone" and view == "back":  # held in front of the body
        groups.discard("carry")
    if a["upper_pattern"] != "logo" or view == "front":
        groups.add("pattern")
    if a["glasses"] and view == "front":
        groups.add("glasses")
    if occluded == "bottom":
        groups.discard("shoes")
    return groups


def split_sizes(identities: int) -> tuple[int, int, int]:
    """Train/val/test identity counts, about 80/10/10, none empty."""
    if identities < 3:
        raise ValueError(f"SynthPEDES needs at least 3 identities (one per split), got {identities}")
    held = max(1, round(identities * 0.1))
    return identities - 2 * held, held, held


def tokens(caption: str) -> list[str]:
    """CUHK-PEDES style processed tokens: lower case words, punctuation dropped."""
    return re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*", caption.lower())


def _identity_records(pid: int, *, seed: int, split: str, images: int, captions: int, size: tuple[int, int],
                      image_dir: str) -> list[dict[str, Any]]:
    records = []
    for k, (file_path, attrs, texts) in enumerate(_identity_images(pid, seed=seed, size=size, image_dir=image_dir,
                                                                    captions=[captions] * images)):
        records.append({"split": split, "captions": texts, "file_path": file_path,
                        "processed_tokens": [tokens(t) for t in texts], "id": pid, "attributes": attrs})
    return records


def _identity_images(pid: int, *, seed: int, size: tuple[int, int], image_dir: str, captions: list[int],
                     words: tuple[tuple[int, ...], ...] | None = None,
                     paths: list[str] | None = None) -> list[tuple[str, dict[str, Any], list[str]]]:
    """Render person ``pid``'s images (one per entry of ``captions``, the caption count of each) into
    ``image_dir``; returns (path under imgs/, attributes, captions) per image. ``words``: target caption lengths."""
    base = sample_identity(seed, pid)
    pal = _palette(seed, pid, base)
    order = _rng(seed, pid, 2).permutation(len(VIEWS))
    out = []
    for k, count in enumerate(captions):
        rng = _rng(seed, pid, 3, k)
        view = VIEWS[order[k]] if k < len(VIEWS) else VIEWS[int(rng.integers(len(VIEWS)))]
        img, scene = render_pedestrian({**base, "view": view}, view, size, rng, pal)
        file_path = paths[k] if paths is not None else f"{IMAGE_FOLDER}/{pid:06d}_{k:02d}.png"
        target = os.path.join(image_dir, file_path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        suffix = os.path.splitext(file_path)[1].lower()
        if suffix == ".png":
            img.save(target, format="PNG", compress_level=1)
        else:
            img.save(target, format={".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}[suffix], quality=95)
        attrs = {**base, "view": view, **scene}
        visible = visible_groups(attrs, view, scene["occluded"])
        texts = caption_image(attrs, visible, _rng(seed, pid, 4, k), count, None if words is None else words[k])
        attrs["visible"] = sorted(visible)
        out.append((file_path, attrs, texts))
    return out


def _profile_records(person: Person, *, profile: DatasetProfile, seed: int, size: tuple[int, int],
                     image_dir: str) -> list[dict[str, Any]]:
    paths = [profile.image_path(person, k) for k in range(person.images)]
    images = _identity_images(person.index + 1, seed=seed, size=size, image_dir=image_dir,
                              captions=[len(w) for w in person.words], words=person.words, paths=paths)
    return [profile.record(person, k, texts, [tokens(t) for t in texts]) for k, (_, _, texts) in enumerate(images)]


def generate_synthpedes(out: str | os.PathLike, *, identities: int, seed: int = 0, images_per_identity: int = 4,
                        captions_per_image: int = 2, image_size: tuple[int, int] = (384, 128),
                        workers: int | None = None, overwrite: bool = False, verbose: bool = False,
                        profile: str | None = None) -> Path:
    """Render SynthPEDES under ``out``; returns the dataset folder (``out/CUHK-PEDES`` by default).

    ``profile`` (cuhk-pedes, icfg-pedes or rstpreid) shapes it like that dataset and writes that dataset's
    own annotation file and folder layout; ``images_per_identity`` and ``captions_per_image`` then come from
    the profile. Without one, every person has the same number of images and captions (CUHK-PEDES layout).
    """
    prof = get_profile(profile) if profile is not None else None
    if prof is None:
        n_train, n_val, n_test = split_sizes(identities)
    else:
        sizes = prof.split_sizes(identities)
        n_train, n_val, n_test = sizes["train"], sizes["val"], sizes["test"]
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if images_per_identity < 1 or captions_per_image < 1:
        raise ValueError(f"images_per_identity and captions_per_image must be >= 1, got "
                         f"{images_per_identity} and {captions_per_image}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1 (or None for every core), got {workers}")
    height, width = image_size
    if height < 32 or width < 16:
        raise ValueError(f"image_size (H, W) must be at least (32, 16), got {image_size}")
    dataset = Path(out) / (prof.folder if prof else DATASET_FOLDER)
    anno = dataset / (prof.annotation_file if prof else "reid_raw.json")
    if anno.exists():
        if not (dataset / MARKER).exists():
            raise FileExistsError(f"{anno} exists and was not written by SynthPEDES; choose another --out")
        if not overwrite:
            raise FileExistsError(f"{anno} exists; pass overwrite=True (--overwrite) or choose another --out")
    images = dataset / "imgs"
    ours = (dataset / MARKER).exists()
    if prof is not None and not ours and images.is_dir() and any(images.iterdir()):
        raise FileExistsError(f"{images} holds files not written by SynthPEDES; choose another --out")
    for path in (anno, dataset / MARKER):
        path.unlink(missing_ok=True)
    shutil.rmtree(images if ours else images / IMAGE_FOLDER, ignore_errors=True)
    (images if prof else images / IMAGE_FOLDER).mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    size = (height, width)
    if prof is None:
        splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
        jobs: list[Any] = [(pid, splits[pid - 1]) for pid in range(1, identities + 1)]
        render: Callable[[Any], list[dict[str, Any]]] = partial(
            _render_job, seed=seed, images=images_per_identity, captions=captions_per_image, size=size,
            image_dir=str(dataset / "imgs"))
    else:
        jobs = prof.plan(identities, seed)
        render = partial(_profile_records, profile=prof, seed=seed, size=size, image_dir=str(dataset / "imgs"))
    workers = min(workers or os.cpu_count() or 1, identities)
    if workers > 1:
        with multiprocessing.get_context().Pool(workers) as pool:
            chunks = list(pool.imap(render, jobs, chunksize=max(1, min(16, identities // (workers * 8)))))
    else:
        chunks = [render(job) for job in jobs]
    records = [rec for chunk in chunks for rec in chunk]

    params: dict[str, Any] = {"generator": "tipr.data.synthetic", "identities": identities, "seed": seed}
    if prof is None:
        params |= {"images_per_identity": images_per_identity, "captions_per_image": captions_per_image}
    else:
        params["profile"] = prof.name
    params |= {"image_size": [height, width],
               "splits": dict(zip(("train", "val", "test"), (n_train, n_val, n_test)))}
    (dataset / MARKER).write_text(json.dumps(params, indent=1) + "\n", encoding="utf-8")
    tmp = anno.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(records), encoding="utf-8")
    os.replace(tmp, anno)  # written last: an annotation file means a complete dataset
    if verbose:
        print(summary(records, time.perf_counter() - start, dataset))
    return dataset


def _render_job(job: tuple[int, str], **kwargs: Any) -> list[dict[str, Any]]:
    pid, split = job
    return _identity_records(pid, split=split, **kwargs)


def summary(records: list[dict[str, Any]], seconds: float, dataset: Path) -> str:
    """A table per split: identities, images, captions, images per person (mean, min-max), words per caption;
    and how many captions CLIP's tokenizer cuts at 77 tokens."""
    import open_clip

    from tipr.data.text_context import long_captions

    rows = [f"SynthPEDES written to {dataset} in {seconds:.1f} s",
            f"{'split':<6} {'ids':>6} {'images':>7} {'captions':>9} {'images/id':>15} {'words/caption':>14}"]
    for split in ("train", "val", "test"):
        recs = [r for r in records if r["split"] == split]
        per_id = list(Counter(r["id"] for r in recs).values()) or [0]
        words = [len(c.split()) for r in recs for c in r["captions"]] or [0]
        spread = f"{np.mean(per_id):.2f} ({min(per_id)}-{max(per_id)})"
        rows.append(f"{split:<6} {len({r['id'] for r in recs}):>6} {len(recs):>7} "
                    f"{sum(len(r['captions']) for r in recs):>9} {spread:>15} {np.mean(words):>14.1f}")
    long = long_captions(open_clip.get_tokenizer("ViT-B-16"), [c for r in records for c in r["captions"]])
    rows.append(f"captions beyond CLIP's {long.context_length} tokens: {long.count} of {long.total} distinct "
                f"(longest {long.longest} tokens)")
    return "\n".join(rows)


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"image size must be HxW, e.g. 384x128, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tipr.data.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder to write CUHK-PEDES/ into")
    parser.add_argument("--identities", type=int, required=True, help="number of people (>= 3)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same bytes")
    parser.add_argument("--images_per_identity", type=int, default=4, help="images per person (views vary)")
    parser.add_argument("--captions_per_image", type=int, default=2, help="captions per image")
    parser.add_argument("--image_size", type=_size, default=(384, 128), help="HxW, e.g. 384x128")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier SynthPEDES in --out")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None,
                        help="shape it like that dataset (images per person, captions per image, caption lengths, "
                             "split sizes) and write that dataset's own annotation file and folders; "
                             "--images_per_identity and --captions_per_image then come from the profile "
                             "(default: every person alike, CUHK-PEDES layout)")
    args = parser.parse_args(argv)
    try:
        generate_synthpedes(args.out, identities=args.identities, seed=args.seed,
                            images_per_identity=args.images_per_identity, captions_per_image=args.captions_per_image,
                            image_size=args.image_size, workers=args.workers, overwrite=args.overwrite, verbose=True,
                            profile=args.profile)
    except (ValueError, FileExistsError) as err:
        parser.exit(2, f"error: {err}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
