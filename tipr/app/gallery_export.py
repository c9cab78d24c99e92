"""A dataset's test split written as an app gallery: a folder of images with a ``captions.json``."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

from tipr.app.gallery_source import CAPTIONS_FILE, CAPTIONS_FORMAT, GalleryError, read_dataset
from tipr.index.folder import write_json


def write_gallery(dataset_root: str | os.PathLike, out: str | os.PathLike, *, captionless: float = 0.2,
                  seed: int = 0, limit: int | None = None) -> Path:
    """Copy a dataset's test split into a gallery folder with a ``captions.json``, hiding the captions of a
    ``captionless`` fraction of the images (kept as ``held_out_captions``, so the app can show how
    completion changes their rank) and each image's true ``attributes`` where the dataset records them
    (SynthPEDES). Returns the gallery folder."""
    if not 0.0 <= captionless < 1.0:
        raise ValueError(f"captionless must be a fraction in [0, 1), got {captionless}")
    source = read_dataset(Path(dataset_root))
    if source is None:
        raise GalleryError(f"{dataset_root} is not a dataset root in the CUHK-PEDES, ICFG-PEDES or RSTPReid layout")
    rows = range(len(source.image_paths))[:limit]
    own = {row: [] for row in rows}
    for caption, row in zip(source.captions, source.caption_images):
        if row in own:
            own[row].append(caption)
    out = Path(out)
    (out / "imgs").mkdir(parents=True, exist_ok=True)
    hidden = set(random.Random(seed).sample(range(len(rows)), round(captionless * len(rows))))
    images = []
    for i in rows:
        path = source.image_paths[i]
        name = "imgs/" + "_".join(Path(path).parts[-2:])  # the parent folder keeps same-named files apart
        shutil.copyfile(path, out / name)
        entry: dict[str, Any] = {"path": name, "pid": source.image_pids[i], "captions": [] if i in hidden else own[i]}
        if i in hidden:
            entry["held_out_captions"] = own[i]
        if i in source.attributes:
            entry["attributes"] = source.attributes[i]
        images.append(entry)
    write_json(out / CAPTIONS_FILE, {"format": CAPTIONS_FORMAT, "images": images})
    return out
