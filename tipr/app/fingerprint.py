"""A gallery's fingerprint: what an embedded index depends on (index format, model, captions, image files).

The quick fingerprint reads file sizes and modification times; the content fingerprint hashes the bytes, for
when only the times changed (a fresh git checkout) and the saved index may still hold.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from tipr.app.gallery_index import INDEX_FORMAT
from tipr.app.gallery_source import GallerySource, relative_path

FileStats = list[list[Any]]


def file_stats(source: GallerySource) -> FileStats:
    """[relative path, size, mtime_ns] per image."""
    stats = []
    for p in source.image_paths:
        st = os.stat(p)
        stats.append([relative_path(p, source.root), st.st_size, st.st_mtime_ns])
    return stats


def _sha1(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


def fingerprint(source: GallerySource, model_fingerprint: str, stats: FileStats | None = None, *,
                contents: bool = False) -> str:
    """sha256 of the index format, model, captions and images (path, size, mtime; or path, size, content)."""
    stats = stats if stats is not None else file_stats(source)
    if contents:
        files = [[rel, size, _sha1(p)] for (rel, size, _), p in zip(stats, source.image_paths)]
    else:
        files = stats
    payload = [INDEX_FORMAT, model_fingerprint, source.text_digest(), files]
    return hashlib.sha256(json.dumps(payload).encode("utf-8")).hexdigest()
