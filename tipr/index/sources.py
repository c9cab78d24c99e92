"""What a gallery to index lists: image paths under one root, with person ids and captions where known.

A gallery is a folder of images (searched recursively, hidden folders skipped), a dataset root in the
CUHK-PEDES / ICFG-PEDES / RSTPReid layout (its test split, with ids and captions), or a list file: one image
path per line, relative to the file's folder or absolute, optionally followed by a tab and a person id;
blank lines and lines starting with ``#`` are skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tipr.data.images import IMAGE_SUFFIXES

DATASET_FORMATS = ("cuhk-pedes", "icfg-pedes", "rstpreid")


class GalleryListError(ValueError):
    """The gallery cannot be listed; the message names the path and what to pass instead."""


@dataclass
class GalleryList:
    """Image paths relative to ``root`` (or absolute, for list-file entries outside it), in index order."""

    root: Path
    kind: str  # "folder" | "list file" | a dataset name
    images: list[str]
    pids: list[int]
    captions: list[str] = field(default_factory=list)
    caption_pids: list[int] = field(default_factory=list)
    caption_images: list[int] = field(default_factory=list)  # the image row each caption describes
    attributes: list[dict | None] = field(default_factory=list)  # each image's true attributes (SynthPEDES)

    def path(self, i: int) -> str:
        return os.path.join(self.root, self.images[i])


def scan_images(root: str | os.PathLike) -> list[str]:
    """Absolute paths of the image files under ``root`` (recursively, hidden files and folders skipped), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [os.path.join(dirpath, f) for f in sorted(filenames)
                  if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return [str(Path(p).resolve()) for p in found]


def _relative(paths: list[str], root: Path) -> list[str]:
    return [Path(os.path.relpath(p, root)).as_posix() if Path(p).is_relative_to(root) else p for p in paths]


def read_list_file(path: Path) -> GalleryList:
    root = path.parent.resolve()
    images, pids = [], []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise GalleryListError(f"{path} is not a list file (one image path per line, UTF-8 text); pass a folder "
                               f"of images, a dataset root or a list file") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, pid = line.rstrip("\n").partition("\t")
        try:
            pids.append(int(pid) if pid.strip() else -1)
        except ValueError:
            raise GalleryListError(f"{path}:{n}: the person id after the tab must be an integer, got {pid!r}") from None
        images.append(str((root / name.strip()).resolve()))
    missing = [p for p in images if not os.path.isfile(p)]
    if missing:
        raise GalleryListError(f"{path} lists {len(missing)} images that do not exist, e.g. {', '.join(missing[:3])}; "
                               f"fix the paths (relative to {root}) or drop those lines")
    if not images:
        raise GalleryListError(f"{path} lists no images; write one image path per line")
    if len(set(images)) != len(images):
        raise GalleryListError(f"{path} lists some images twice; list each image once")
    return GalleryList(root=root, kind="list file", images=_relative(images, root), pids=pids)


def read_dataset_test(root: Path) -> GalleryList | None:
    """The test split of a dataset root in one of the public layouts, or None when ``root`` is not one."""
    from tipr.data import MissingImagesError, load_dataset

    for name in DATASET_FORMATS:
        try:
            dataset = load_dataset(name, root)
        except MissingImagesError as err:
            raise GalleryListError(str(err)) from None
        except FileNotFoundError:
            continue
        test = dataset.test
        if not test.image_paths:
            raise GalleryListError(f"{root} is a {dataset.name} dataset but its test split has no images; "
                                   f"pass a folder of images instead")
        base = Path(dataset.root).resolve()
        return GalleryList(root=base, kind=dataset.name, images=_relative(list(test.image_paths), base),
                           pids=list(test.image_pids), captions=list(test.captions),
                           caption_pids=list(test.caption_pids), caption_images=list(test.caption_images),
                           attributes=list(test.image_attributes))
    return None


def list_gallery(path: str | os.PathLike) -> GalleryList:
    """The images of a folder, a dataset root or a list file, in a fixed order."""
    path = Path(path).expanduser()
    if not path.exists():
        raise GalleryListError(f"gallery {path} does not exist; pass a folder of images, a dataset root "
                               f"(CUHK-PEDES / ICFG-PEDES / RSTPReid layout) or a list file of image paths")
    if path.is_file():
        return read_list_file(path)
    root = path.resolve()
    dataset = read_dataset_test(root)
    if dataset is not None:
        return dataset
    images = scan_images(root)
    if not images:
        raise GalleryListError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {root}")
    return GalleryList(root=root, kind="folder", images=_relative(images, root), pids=[-1] * len(images))
