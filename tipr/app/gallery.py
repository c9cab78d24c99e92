"""The app's gallery index: a saved one when it still matches the gallery and the model, else embedded now.

The app never writes into the gallery folder (it may be under version control, as ``assets/gallery`` is):
its own indexes and what it learns about saved ones go to the cache folder. A saved index is reused while its
fingerprint holds (see ``tipr.app.fingerprint``); when only file times changed, the contents are compared once
and the result remembered in the cache folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from tipr.app.fingerprint import FileStats, file_stats, fingerprint
from tipr.app.gallery_embedding import EmbedImages, EmbedTexts, build_index, drop_unreadable
from tipr.app.gallery_index import GalleryIndex
from tipr.app.gallery_source import GalleryError, GallerySource, read_source
from tipr.app.index_folder import load_index_folder
from tipr.app.index_store import INDEX_DIRNAME, META, cache_index_dir, load_index, read_meta, save_index
from tipr.index.folder import is_index_folder, write_json

log = logging.getLogger("tipr.app")


def read_gallery(path: str | os.PathLike) -> tuple[GallerySource, Path | None]:
    """The gallery at ``path`` and, when ``path`` is a saved index folder (or its meta.json), that folder."""
    path = Path(path).expanduser()
    if path.is_file() and path.name == META or (path / META).is_file():
        index_dir = path.parent if path.is_file() else path
        meta = read_meta(index_dir)
        if meta is None:
            raise GalleryError(f"{index_dir} is not a tipr gallery index (its {META} is unreadable or of another "
                               f"format); pass the gallery folder itself to index it again")
        root = (index_dir / meta["root"]).resolve()
        if not root.is_dir():
            raise GalleryError(f"the index {index_dir} belongs to the gallery {root}, which does not exist; "
                               f"restore the images or pass another gallery")
        return read_source(root), index_dir
    return read_source(path), None


def _checked_record(index_dir: Path, cache_dir: Path) -> Path:
    key = hashlib.sha256(str(index_dir.resolve()).encode()).hexdigest()[:16]
    return cache_dir / "galleries" / "checked" / f"{key}.json"


def _known_same(index_dir: Path, meta: dict, quick: str, cache_dir: Path) -> bool:
    """Whether an earlier start found ``index_dir`` to match the gallery as it is now (same contents)."""
    try:
        record = json.loads(_checked_record(index_dir, cache_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return record == {"index": str(index_dir.resolve()), "saved": [meta.get("fingerprint"),
                                                                  meta.get("content_fingerprint")], "now": quick}


def _remember_same(index_dir: Path, meta: dict, quick: str, cache_dir: Path) -> None:
    record = {"index": str(index_dir.resolve()), "saved": [meta.get("fingerprint"), meta.get("content_fingerprint")],
              "now": quick}
    try:
        write_json(_checked_record(index_dir, cache_dir), record)
    except OSError as err:  # only costs hashing the contents again at the next start
        log.warning("could not note the checked index in %s (%s)", cache_dir, err)


def find_saved_index(source: GallerySource, model_fingerprint: str, candidates: Sequence[Path], *,
                     cache_dir: Path, stats: FileStats | None = None) -> GalleryIndex | None:
    """A saved index that matches the gallery and the model, or None. Writes nothing into ``candidates``."""
    stats = stats if stats is not None else file_stats(source)
    quick = fingerprint(source, model_fingerprint, stats)
    content: str | None = None
    for index_dir in candidates:
        meta = read_meta(index_dir)
        if meta is None or meta.get("model") != model_fingerprint:
            continue
        if meta.get("fingerprint") != quick and not _known_same(index_dir, meta, quick, cache_dir):
            # same files under new modification times (a git checkout): compare contents before re-embedding
            if content is None:
                content = fingerprint(source, model_fingerprint, stats, contents=True)
            if meta.get("content_fingerprint") != content:
                continue
            _remember_same(index_dir, meta, quick, cache_dir)
        found = load_index(index_dir, meta, source, quick)
        if found is not None:
            return found
    return None


def embed_gallery(source: GallerySource, *, model_fingerprint: str, embed_images: EmbedImages,
                  embed_texts: EmbedTexts, save_dir: Path, stats: FileStats | None = None) -> GalleryIndex:
    """Embed the gallery's readable images and its captions now and save the index to ``save_dir``
    (a failure to save is logged: the index still serves this run)."""
    stats = stats if stats is not None else file_stats(source)
    usable = drop_unreadable(source)
    log.info("embedding the gallery %s (%d images, %d captions)", source.root, len(usable.image_paths),
             len(usable.captions))
    index = build_index(usable, embed_images, embed_texts, fingerprint(source, model_fingerprint, stats))
    try:
        save_index(index, Path(save_dir), model_fingerprint=model_fingerprint,
                   content_fingerprint=fingerprint(source, model_fingerprint, stats, contents=True))
        log.info("saved the gallery index to %s", save_dir)
    except OSError as err:
        log.warning("could not save the gallery index to %s (%s); it will be embedded again at the next start",
                    save_dir, err)
    return index


def load_or_build(path: str | os.PathLike, *, model_fingerprint: str, embed_images: EmbedImages,
                  embed_texts: EmbedTexts, cache_dir: str | os.PathLike) -> GalleryIndex:
    """The gallery's index: an index folder written by ``python -m tipr.index``, else a saved one (the index
    folder given, ``<gallery>/.tipr-index``, the cache's) when it still matches the images and the model, else
    embedded now and saved in the cache folder."""
    if is_index_folder(path):  # built offline by python -m tipr.index: nothing to check or embed
        return load_index_folder(path, model_fingerprint=model_fingerprint)
    source, index_dir = read_gallery(path)
    cache_dir = Path(cache_dir).expanduser()
    own = cache_index_dir(source.root, cache_dir)
    candidates = list(dict.fromkeys(p for p in (index_dir, source.root / INDEX_DIRNAME, own) if p is not None))
    stats = file_stats(source)
    found = find_saved_index(source, model_fingerprint, candidates, cache_dir=cache_dir, stats=stats)
    if found is not None:
        log.info("reusing the gallery index at %s (%d images)", found.location, len(found))
        return found
    return embed_gallery(source, model_fingerprint=model_fingerprint, embed_images=embed_images,
                         embed_texts=embed_texts, save_dir=own, stats=stats)
