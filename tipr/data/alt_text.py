"""Alt-text captions: what web pretraining gives CLIP, made from SynthPEDES attributes.

Web alt-text names one or two things in a picture ("woman in red coat", "black jeans, white sneakers"), not the
head-to-toe description of a person-retrieval annotator. A tiny CLIP pretrained on renders of *other* people
captioned this way knows colours, garments and bags as words and as pixels, but has never read a description
that binds five attributes to one person; that is where web CLIP stands before fine-tuning on CUHK-PEDES.

    python -m tipr.data.alt_text --source DIR/CUHK-PEDES --out ALT

rewrites a SynthPEDES annotation with alt-text captions (the images are linked, not copied).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tipr.data.synthetic_captions import (BAG_WORDS, COLOUR_WORDS, GENDER_WORDS, HAIR_COLOUR_WORDS, HEADWEAR_WORDS,
                                          LOWER_WORDS, SHOE_WORDS, UPPER_WORDS)

_GROUPS = ("upper", "lower", "shoes", "bag", "headwear", "hair")
_WORN = {"upper", "lower", "shoes", "headwear"}


def _pick(rng: np.random.Generator, options) -> str:
    options = list(options)
    return options[int(rng.integers(len(options)))]


def _phrase(group: str, a: Mapping[str, Any], rng: np.random.Generator) -> str:
    """A short noun phrase for one attribute group, colour first (colour named 80% of the time)."""
    noun, colour_key, colours = {
        "upper": (lambda: _pick(rng, UPPER_WORDS[a["upper_type"]]), "upper_colour", COLOUR_WORDS),
        "lower": (lambda: _pick(rng, LOWER_WORDS[a["lower_type"]]), "lower_colour", COLOUR_WORDS),
        "shoes": (lambda: _pick(rng, SHOE_WORDS), "shoes_colour", COLOUR_WORDS),
        "bag": (lambda: _pick(rng, BAG_WORDS[a["bag_type"]]), "bag_colour", COLOUR_WORDS),
        "headwear": (lambda: _pick(rng, HEADWEAR_WORDS[a["headwear"]]), "headwear_colour", COLOUR_WORDS),
        "hair": (lambda: "hair", "hair_colour", HAIR_COLOUR_WORDS),
    }[group]
    value = a.get(colour_key)
    words = [_pick(rng, colours[value])] if value in colours and (group == "hair" or rng.random() < 0.8) else []
    return " ".join(words + [noun()])


def alt_text(attributes: Mapping[str, Any], rng: np.random.Generator) -> str:
    """One alt-text caption naming one or two of the visible attribute groups of a SynthPEDES image."""
    visible = set(attributes.get("visible") or _GROUPS)
    groups = [g for g in _GROUPS if g in visible and (g not in ("bag", "headwear") or attributes.get(
        "bag_type" if g == "bag" else "headwear", "none") != "none")]
    if not groups:
        return _pick(rng, ("person", "pedestrian", "photo of a person"))
    chosen = [groups[i] for i in rng.permutation(len(groups))[:1 + int(rng.random() < 0.5)]]
    phrases = [_phrase(g, attributes, rng) for g in chosen]
    person = _pick(rng, GENDER_WORDS[attributes["gender"]]) if "gender" in attributes and rng.random() < 0.6 \
        else _pick(rng, ("person", "pedestrian"))
    style = rng.random()
    if style < 0.35:
        return ", ".join(phrases)
    if style < 0.85:
        link = "in" if chosen[0] in _WORN else "with"
        return f"{person} {link} {' and '.join(phrases)}"
    return f"photo of {person} with {' and '.join(phrases)}"


def write_alt_text_dataset(source: str | os.PathLike, out: str | os.PathLike, *, captions_per_image: int = 2,
                           seed: int = 0, keep_captions: bool = False) -> Path:
    """A copy of the SynthPEDES annotation at `source` (a CUHK-PEDES folder) with alt-text captions; the images
    folder is a link to the source's. Returns the new CUHK-PEDES folder; an existing one is kept.

    `keep_captions` keeps each image's own descriptions and adds the alt-text after them: a model trained on both
    reads a full description and a two-word query alike."""
    source, folder = Path(source), Path(out) / "CUHK-PEDES"
    annotation = folder / "reid_raw.json"
    if annotation.is_file():
        return folder
    records = json.loads((source / "reid_raw.json").read_text())
    if any(not r.get("attributes") for r in records):
        raise ValueError(f"{source / 'reid_raw.json'} has records without 'attributes'; alt-text captions are made "
                         "from SynthPEDES's attribute records (python -m tipr.data.synthetic)")
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "imgs").exists():
        os.symlink((source / "imgs").resolve(), folder / "imgs", target_is_directory=True)
    out_records = []
    for i, rec in enumerate(records):
        rng = np.random.default_rng([seed, i])
        captions = [alt_text(rec["attributes"], rng) for _ in range(captions_per_image)]
        if keep_captions:
            captions = rec["captions"] + captions
        tokens = [c.replace(",", "").split() for c in captions]
        out_records.append(rec | {"captions": captions, "processed_tokens": tokens})
    tmp = annotation.with_suffix(".tmp")
    tmp.write_text(json.dumps(out_records))
    os.replace(tmp, annotation)
    return folder


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tipr.data.alt_text", description=__doc__.split("\n")[0])
    p.add_argument("--source", required=True, help="a SynthPEDES CUHK-PEDES folder (with reid_raw.json)")
    p.add_argument("--out", required=True, help="folder to write CUHK-PEDES/ into")
    p.add_argument("--captions_per_image", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep_captions", action="store_true",
                   help="keep each image's own captions and add --captions_per_image alt-text ones after them")
    args = p.parse_args(argv)
    print(write_alt_text_dataset(args.source, args.out, captions_per_image=args.captions_per_image, seed=args.seed,
                                 keep_captions=args.keep_captions))


if __name__ == "__main__":
    main()
