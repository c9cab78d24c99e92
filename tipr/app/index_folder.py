"""A gallery indexed offline by ``python -m tipr.index``: loaded memory-mapped, nothing embedded or scanned at
start-up, images read only when shown."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tipr.app.gallery_index import GalleryIndex
from tipr.app.gallery_source import GalleryError, GallerySource
from tipr.index.folder import IndexFolderError, open_index

log = logging.getLogger("tipr.app")


def load_index_folder(path: str | os.PathLike, *, model_fingerprint: str) -> GalleryIndex:
    """The app's view of an index folder: its faiss index searches (with exact re-scoring where it
    compresses), its memory-mapped features are the image features."""
    try:
        index = open_index(path, model_fingerprint=model_fingerprint)
    except IndexFolderError as err:
        raise GalleryError(str(err)) from None
    root = str(index.root)
    text = index.text
    source = GallerySource(root=Path(root), kind=f"index of a {index.manifest['kind']}",
                           image_paths=[os.path.join(root, p) for p in index.images],
                           image_pids=index.pids.tolist(), captions=text.captions, caption_pids=text.caption_pids,
                           caption_images=[-1] * len(text.captions))
    log.info("loaded the index %s: %d images (%s), gallery %s", index.folder, len(index), index.manifest["factory"],
             root)
    return GalleryIndex(source=source, image_features=index.features, caption_features=text.caption_features,
                        phrases=text.phrases, phrase_features=text.phrase_features,
                        fingerprint=index.manifest["build"], location=index.folder, faiss_index=index)
