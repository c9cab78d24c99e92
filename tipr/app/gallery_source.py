"""What a gallery holds before embedding: a folder of images, a folder with a ``captions.json``, a dataset root in
the CUHK-PEDES / ICFG-PEDES / RSTPReid layout (its test split), or a list file of image paths."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tipr.index.folder import read_format_json
from tipr.index.sources import GalleryList, GalleryListError, list_gallery, read_dataset_test

CAPTIONS_FILE = "captions.json"
CAPTIONS_FORMAT = "tipr-gallery-captions/1"


class GalleryError(ValueError):
    """The gallery cannot be read or indexed; the message names the path and what to do."""


@dataclass
class GallerySource:
    """Absolute image paths of a gallery, and its text side when it has one.

    ``caption_images[j]`` is the image caption j describes (-1 when the format does not say); ``held_out``
    maps a captionless image to captions hidden from the gallery, which the app uses to show how completion
    changes that image's rank. Person ids are -1 where unknown. ``attributes`` maps an image row to its true
    attributes where the gallery records them (a SynthPEDES gallery does; the demo's figures read them).
    """

    root: Path
    kind: str
    image_paths: list[str]
    image_pids: list[int]
    captions: list[str] = field(default_factory=list)
    caption_pids: list[int] = field(default_factory=list)
    caption_images: list[int] = field(default_factory=list)
    held_out: dict[int, list[str]] = field(default_factory=dict)
    attributes: dict[int, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.image_pids) != len(self.image_paths):
            raise GalleryError(f"{self.root}: {len(self.image_paths)} images but {len(self.image_pids)} person ids")
        if not (len(self.captions) == len(self.caption_pids) == len(self.caption_images)):
            raise GalleryError(f"{self.root}: captions, caption_pids and caption_images differ in length")

    @property
    def captionless(self) -> list[int]:
        """Images known to have no caption in the gallery (none when captions are not linked to images)."""
        if not self.captions or any(i < 0 for i in self.caption_images):
            return sorted(self.held_out)
        described = set(self.caption_images)
        return [i for i in range(len(self.image_paths)) if i not in described]

    def relative(self, row: int) -> str:
        """Image ``row``'s path relative to the gallery root (as the user knows it)."""
        return relative_path(self.image_paths[row], self.root)

    def text_digest(self) -> str:
        payload = [self.kind, self.image_pids, self.captions, self.caption_pids, self.caption_images,
                   sorted((int(k), v) for k, v in self.held_out.items())]
        return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()


def relative_path(path: str, root: Path) -> str:
    """``path`` relative to ``root`` in POSIX form, or as given when it lies outside."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def subset(source: GallerySource, rows: Sequence[int]) -> GallerySource:
    """The source restricted to the given image rows (their captions follow them)."""
    if len(rows) == len(source.image_paths):
        return source
    new_row = {old: new for new, old in enumerate(rows)}
    cap_keep = [j for j, img in enumerate(source.caption_images) if img < 0 or img in new_row]
    return GallerySource(
        root=source.root, kind=source.kind,
        image_paths=[source.image_paths[i] for i in rows], image_pids=[source.image_pids[i] for i in rows],
        captions=[source.captions[j] for j in cap_keep], caption_pids=[source.caption_pids[j] for j in cap_keep],
        caption_images=[new_row.get(source.caption_images[j], -1) for j in cap_keep],
        held_out={new_row[i]: c for i, c in source.held_out.items() if i in new_row},
        attributes={new_row[i]: a for i, a in source.attributes.items() if i in new_row})


def read_captions_file(root: Path) -> GallerySource:
    """``captions.json``: {"format": "tipr-gallery-captions/1", "images": [{"path": "imgs/a.png", "pid": 3,
    "captions": ["..."], "held_out_captions": ["..."], "attributes": {...}}, ...]}; an image with no captions is
    captionless; ``attributes`` (optional) are its true attributes."""
    path = root / CAPTIONS_FILE
    data = read_format_json(path, CAPTIONS_FORMAT, "images", what="a tipr gallery captions file", error=GalleryError,
                            hint="Fix the file or remove it to index the images alone")
    src = GallerySource(root=root, kind="captions file", image_paths=[], image_pids=[])
    missing = []
    for i, item in enumerate(data["images"]):
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise GalleryError(f"{path}: entry {i} needs a \"path\" string (relative to {root})")
        image = (root / item["path"]).resolve()
        if not image.is_file():
            missing.append(item["path"])
            continue
        row = len(src.image_paths)
        src.image_paths.append(str(image))
        src.image_pids.append(int(item.get("pid", -1)))
        captions = [c for c in item.get("captions", []) if isinstance(c, str) and c.strip()]
        src.captions += captions
        src.caption_pids += [src.image_pids[-1]] * len(captions)
        src.caption_images += [row] * len(captions)
        held = [c for c in item.get("held_out_captions", []) if isinstance(c, str) and c.strip()]
        if held and not captions:
            src.held_out[row] = held
        if isinstance(item.get("attributes"), dict):
            src.attributes[row] = item["attributes"]
    if missing:
        raise GalleryError(f"{path} lists {len(missing)} images that are not under {root}, e.g. "
                           f"{', '.join(missing[:3])}; restore them or drop their entries")
    if not src.image_paths:
        raise GalleryError(f"{path} lists no images; add entries or remove the file")
    return src


def _from_listing(listing: GalleryList) -> GallerySource:
    return GallerySource(root=listing.root, kind=listing.kind,
                         image_paths=[listing.path(i) for i in range(len(listing.images))], image_pids=listing.pids,
                         captions=listing.captions, caption_pids=listing.caption_pids,
                         caption_images=listing.caption_images or [-1] * len(listing.captions),
                         attributes={i: a for i, a in enumerate(listing.attributes) if isinstance(a, dict)})


def read_dataset(root: Path) -> GallerySource | None:
    """The test split of a dataset root in one of the public layouts, or None when ``root`` is not one."""
    try:
        listing = read_dataset_test(root)
    except GalleryListError as err:
        raise GalleryError(str(err)) from None
    return None if listing is None else _from_listing(listing)


def read_source(path: str | os.PathLike) -> GallerySource:
    """The gallery at ``path``: a folder's captions file, else what ``tipr.index.sources.list_gallery`` lists
    (the dataset the folder holds, its images, or the images a list file names)."""
    path = Path(path).expanduser()
    if path.is_dir() and (path / CAPTIONS_FILE).is_file():
        return read_captions_file(path.resolve())
    try:
        return _from_listing(list_gallery(path))
    except GalleryListError as err:
        raise GalleryError(str(err)) from None
