"""An embedded gallery: normalised features of its images, captions and caption noun phrases, and a faiss index."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tipr.app.gallery_source import GallerySource

INDEX_FORMAT = "tipr-gallery-index/1"


@dataclass
class GalleryIndex:
    """Normalised features of a gallery's images, captions and caption noun phrases, and a faiss index."""

    source: GallerySource
    image_features: np.ndarray  # [N, d] L2-normalised (float32, or float16 memory-mapped from an index folder)
    caption_features: np.ndarray  # [C, d]
    phrases: list[str]
    phrase_features: np.ndarray  # [P, d]
    fingerprint: str
    location: Path | None = None
    faiss_index: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.faiss_index is None:
            import faiss

            self.faiss_index = faiss.IndexFlatIP(self.dim)
            self.faiss_index.add(np.ascontiguousarray(self.image_features, dtype=np.float32))

    @property
    def dim(self) -> int:
        return int(self.image_features.shape[1])

    def __len__(self) -> int:
        return len(self.source.image_paths)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores [Q, k], rows [Q, k]) by inner product, best first; k is capped at the gallery size."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        return self.faiss_index.search(q, max(1, min(int(k), len(self))))

    def vectors(self, rows) -> np.ndarray:
        """Image features [len(rows), d] float32 of the given rows (a few rows of a memory-mapped file)."""
        return np.asarray(self.image_features[np.asarray(rows, dtype=np.int64)], dtype=np.float32)
