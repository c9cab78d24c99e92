"""A gallery index on disk: ``images.faiss``, ``text.npz`` and ``meta.json`` in one folder, written atomically."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from tipr.app.gallery_index import INDEX_FORMAT, GalleryIndex
from tipr.app.gallery_source import GallerySource, relative_path, subset
from tipr.index.folder import write_json

log = logging.getLogger("tipr.app")

INDEX_DIRNAME = ".tipr-index"
META = "meta.json"


def cache_index_dir(root: Path, cache_dir: Path) -> Path:
    """The folder under ``cache_dir`` that holds the app's own index of the gallery at ``root``."""
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return Path(cache_dir) / "galleries" / f"{root.name}-{key}"


def read_meta(index_dir: Path) -> dict[str, Any] | None:
    """The index folder's metadata, or None when it is missing, unreadable or of another format."""
    try:
        meta = json.loads((index_dir / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == INDEX_FORMAT else None


def load_index(index_dir: Path, meta: dict[str, Any], source: GallerySource, fingerprint: str) -> GalleryIndex | None:
    """The saved arrays of ``index_dir`` for ``source``, or None when they are unreadable or do not fit it."""
    import faiss

    try:
        index = faiss.read_index(str(index_dir / "images.faiss"))
        with np.load(index_dir / "text.npz") as npz:
            captions, phrases = npz["captions"], npz["phrases"]
    except (OSError, RuntimeError, ValueError, KeyError) as err:
        log.warning("ignoring the unreadable gallery index at %s (%s); embedding again", index_dir, err)
        return None
    kept = set(meta.get("images", []))  # unreadable images were left out when the index was built
    source = subset(source, [i for i, p in enumerate(source.image_paths) if relative_path(p, source.root) in kept])
    if index.ntotal != len(source.image_paths) or len(captions) != len(source.captions):
        return None
    images = index.reconstruct_n(0, index.ntotal)
    return GalleryIndex(source=source, image_features=images, caption_features=captions,
                        phrases=list(meta.get("phrases", [])), phrase_features=phrases, fingerprint=fingerprint,
                        location=index_dir, faiss_index=index)


def save_index(index: GalleryIndex, index_dir: Path, *, model_fingerprint: str, content_fingerprint: str) -> Path:
    """Write the index into ``index_dir`` (built in a sibling temporary folder, then swapped in).

    ``content_fingerprint`` is that of the gallery as read, unreadable images included, like ``index.fingerprint``.
    """
    import faiss

    source = index.source
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=index_dir.parent, prefix=f".{index_dir.name}.tmp-"))
    try:
        faiss.write_index(index.faiss_index, str(tmp / "images.faiss"))
        np.savez(tmp / "text.npz", captions=index.caption_features, phrases=index.phrase_features)
        meta = {
            "format": INDEX_FORMAT,
            "fingerprint": index.fingerprint,
            "content_fingerprint": content_fingerprint,
            "model": model_fingerprint,
            # next to the gallery the index names it relatively, so the pair can be moved or shipped together
            "root": (os.path.relpath(source.root, index_dir) if index_dir.resolve().is_relative_to(source.root)
                     else str(source.root)),
            "kind": source.kind,
            "images": [relative_path(p, source.root) for p in source.image_paths],
            "num_captions": len(source.captions),
            "phrases": index.phrases,
            "dim": index.dim,
        }
        write_json(tmp / META, meta)
        old = index_dir.with_name(f".{index_dir.name}.old-{uuid.uuid4().hex[:8]}")
        if index_dir.exists():
            os.replace(index_dir, old)
        os.replace(tmp, index_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    index.location = index_dir
    return index_dir
