"""The faiss index of a gallery's features: the factory string chosen by gallery size, trained on a sample.

Defaults (inner product on L2-normalised features):

| images            | factory                 | search                                               |
|-------------------|-------------------------|------------------------------------------------------|
| below 50,000      | ``Flat``                | exact                                                |
| 50,000 - 499,999  | ``IVF{n},Flat``         | ``nprobe`` lists, exact scores of their vectors      |
| 500,000 and more  | ``IVF{n},PQ{d/8}``      | ``nprobe`` lists, then exact re-scoring of the top    |
|                   |                         | ``rescore x k`` candidates from the features file    |

``n`` is the power of two nearest to 4 sqrt(images) (1,024 at 100k, 4,096 at 1M); ``nprobe`` defaults
to n/32, at least 8. Product quantisation keeps 1M x 512-d in 64 MB instead of 2 GB; the re-scoring reads only
the candidates' rows of the memory-mapped features.
"""

from __future__ import annotations

import math
import re

import numpy as np

FLAT_BELOW = 50_000
PQ_FROM = 500_000
TRAIN_POINTS_PER_LIST = 64  # faiss warns below 39 per centroid; more buys little
HNSW_EF_SEARCH = 128
MIN_TRAIN, MAX_TRAIN = 16_384, 262_144
_LOSSY = re.compile(r"(^|,)\s*(OPQ|PQ|SQ|RQ|PRQ|LSQ|PLSQ|LSH|RaBitQ|ITQ)", re.IGNORECASE)


def nlist_for(n: int) -> int:
    return max(1, 2 ** round(math.log2(4 * math.sqrt(max(n, 1)))))


def default_factory(n: int, dim: int) -> str:
    """The factory string tipr uses for ``n`` images of width ``dim`` (see the module's table)."""
    if n < FLAT_BELOW:
        return "Flat"
    if n < PQ_FROM:
        return f"IVF{nlist_for(n)},Flat"
    m = dim // 8 if dim % 8 == 0 else next(m for m in range(dim // 8, 0, -1) if dim % m == 0)
    return f"IVF{nlist_for(n)},PQ{m}"


def default_nprobe(index) -> int | None:
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    return None if ivf is None else min(ivf.nlist, max(8, ivf.nlist // 32))


def is_lossy(factory: str) -> bool:
    """Whether the index's scores are approximate (compressed codes), so the top candidates are re-scored."""
    return bool(_LOSSY.search(factory))


def new_index(factory: str, dim: int):
    """An empty faiss index for inner products; a clear error when faiss does not understand ``factory``."""
    import faiss

    try:
        return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        raise ValueError(f"faiss cannot build the index {factory!r} for {dim}-d features ({str(err).strip()[-200:]}); "
                         f"pass a faiss factory string such as Flat, IVF1024,Flat, HNSW32 or IVF4096,PQ64") from None


def build_faiss(features: np.ndarray, factory: str, *, seed: int = 0, threads: int | None = None):
    """A trained faiss index over ``features`` ([n, d], L2-normalised), ids 0..n-1."""
    import faiss

    x = np.ascontiguousarray(features, dtype=np.float32)
    n, dim = x.shape
    if threads:
        faiss.omp_set_num_threads(threads)
    index = new_index(factory, dim)
    if not index.is_trained:
        ivf = faiss.try_extract_index_ivf(index)
        need = ivf.nlist * 39 if ivf is not None else 256
        if n < need:
            raise ValueError(f"the index {factory!r} needs at least {need} images to train on, the gallery has {n}; "
                             f"use fewer lists or Flat")
        # k-means of the lists and of the 256 codewords of each PQ/SQ sub-quantiser both want tens of points each
        want = min(n, MAX_TRAIN, max(need, (ivf.nlist if ivf else 1) * TRAIN_POINTS_PER_LIST, MIN_TRAIN))
        sample = np.random.default_rng(seed).choice(n, size=want, replace=False) if want < n else slice(None)
        if ivf is not None:
            ivf.cp.seed = seed
        index.train(x[np.sort(sample)] if not isinstance(sample, slice) else x)
    for start in range(0, n, 65_536):  # bounded float32 copies
        index.add(x[start:start + 65_536])
    nprobe = default_nprobe(index)
    if nprobe is not None:
        faiss.extract_index_ivf(index).nprobe = nprobe
    hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
    if hnsw is not None:  # faiss's default (16) finds about 80% of the true top-10; saved with the index
        hnsw.efSearch = HNSW_EF_SEARCH
    return index
