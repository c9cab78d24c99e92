"""High Semantic Similarity Neighbour Generation (ECCA eq. 3-7).

For a query whose other modality is missing (a text t_m with no image, or an image v_n with no text):

- N_k(t_m): the k nearest rows of the other modality's bank (the cross bank), eq. 3;
- R_k(t_m) = {v in N_k(t_m) : t_m in N_k(v)}, where N_k(v) ranks the query's own modality (the self bank),
  eq. 4;
- R_k(v_i) = {v_j in N_k(v_i) : v_i in N_k(v_j)} inside the cross bank, eq. 5 (v_i is its own first
  neighbour, so it belongs to its own set);
- d(t_m, v_i) = 1 - |R_k(t_m) & R_k(v_i)| / |R_k(t_m) | R_k(v_i)|, eq. 6 (both are sets of cross-bank rows);
- the k' most reliable neighbours, eq. 7: the members of R_k(t_m) by ascending d (ties: higher cosine first).

Membership "q in N_k(b)" is tested as <b, q> >= (k-th largest similarity of b in q's bank), so it holds
whether or not the queries are themselves rows of that bank, and ties at the boundary count as members.
Features live in cosine space: every entry point L2-normalises its inputs. Nearest neighbours come from
faiss (no N x N matrix; exact by default, or any faiss index factory string such as "IVF1024,Flat" with
search parameters such as "nprobe=16" for an approximate search at CUHK-PEDES scale on CPU) or from a
chunked dense torch product.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
logger = logging.getLogger(__name__)

_TOL = 1e-5  # float32 rounding between two computations of the same cosine (faiss vs torch, query vs bank side)
_DENSE_CHUNK_ELEMENTS = 1 << 24  # similarity entries per chunk on the dense path (64 MB of float32)


def _check_2d(name: str, x: Tensor, dim: int | None = None) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D tensor [rows, dim], got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} has feature dim {x.shape[1]} but the queries have {dim}; pass features from "
                         f"the same joint embedding space")


class NeighbourSearch:
    """Inner-product k-nearest-neighbour search over one bank [N,d]; its faiss index is built once.

    ``index`` is a faiss index factory string ("Flat": exact), ``index_params`` faiss search parameters
    ("nprobe=16"); ``use_faiss=False`` searches with chunked dense torch products instead. A bank too small
    to train the index is searched exactly (with a warning).
    """

    def __init__(self, bank: Tensor, *, use_faiss: bool = True, index: str = "Flat", index_params: str = ""):
        _check_2d("bank", bank)
        self.bank = bank.detach().float()
        self._faiss = None
        if use_faiss:
            import faiss  # noqa: PLC0415  (optional at import time: the dense path needs none)

            self._faiss = _faiss_index(faiss, _as_faiss(self.bank), index, index_params)

    def __call__(self, query: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """(similarities [Q,k] descending, indices [Q,k]) of the k nearest bank rows of each query."""
        _check_2d("query", query, self.bank.shape[1])
        if not 1 <= k <= self.bank.shape[0]:
            raise ValueError(f"k={k} nearest neighbours asked from a bank of {self.bank.shape[0]} rows; use "
                             f"1 <= k <= rows")
        if query.shape[0] == 0:
            return torch.zeros(0, k), torch.zeros(0, k, dtype=torch.long)
        if self._faiss is None:
            return self._dense(query, k)
        sims, idx = (torch.from_numpy(a) for a in self._faiss.search(_as_faiss(query), k))
        short = (idx < 0).any(1).nonzero()[:, 0]  # an approximate index can find fewer than k: search exactly
        if len(short):
            sims[short], idx[short] = self._dense(query[short].cpu(), k)
        return sims, idx.long()

    def _dense(self, query: Tensor, k: int) -> tuple[Tensor, Tensor]:
        query, bank = query.detach().float(), self.bank.to(query.device)
        chunk = max(1, _DENSE_CHUNK_ELEMENTS // bank.shape[0])
        parts = [torch.topk(q @ bank.T, k, dim=1) for q in query.split(chunk)]
        return torch.cat([p.values for p in parts]).cpu(), torch.cat([p.indices for p in parts]).cpu()


def knn(query: Tensor, bank: Tensor, k: int, **search) -> tuple[Tensor, Tensor]:
    """The k nearest rows of ``bank`` for each query, searched once (``search``: NeighbourSearch's options)."""
    _check_2d("query", query)
    _check_2d("bank", bank, query.shape[1])
    return NeighbourSearch(bank, **search)(query, k)


def _as_faiss(x: Tensor):
    return x.detach().to("cpu", torch.float32).contiguous().numpy()


def _faiss_index(faiss, bank, spec: str, params: str):
    if spec == "Flat":
        index = faiss.IndexFlatIP(bank.shape[1])
    else:
        try:
            index = faiss.index_factory(bank.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as err:
            raise ValueError(f"faiss cannot build index {spec!r} (a faiss index factory string, e.g. 'Flat', "
                             f"'IVF1024,Flat' or 'HNSW32'): {err}") from None
        if not index.is_trained:
            try:
                index.train(bank)
            except RuntimeError:
                logger.warning("faiss index %r cannot be trained on %d rows; searching them exactly", spec, len(bank))
                return _faiss_index(faiss, bank, "Flat", "")
        if params:
            try:
                faiss.ParameterSpace().set_index_parameters(index, params)
            except RuntimeError as err:
                raise ValueError(f"faiss search parameters {params!r} do not apply to index {spec!r}: {err}") from None
    index.add(bank)
    return index


def kth_similarity(rows: Tensor, space: Tensor, k: int, **search) -> Tensor:
    """The k-th largest similarity of each row to ``space``: "q in N_k(row)" iff <row, q> >= this value.

    ``search``: NeighbourSearch's use_faiss, index and index_params.
    """
    return knn(rows, space, k, **search)[0][:, -1]


def _is_member(sims: Tensor, kth: Tensor) -> Tensor:
    return sims >= kth - _TOL


def k_reciprocal_sets(query: Tensor, bank: Tensor, query_space: Tensor, *, k: int,
                      **search) -> tuple[Tensor, Tensor]:
    """R_k(q) = {b in N_k(q) : q in N_k(b)} for each query (eq. 4, and eq. 5 with query_space = bank).

    ``N_k(q)`` ranks the rows of ``bank``; ``N_k(b)`` ranks ``query_space`` (the bank the queries belong to).
    Returns (neighbours [Q,k] indices into ``bank`` by descending similarity, is_reciprocal [Q,k] bool):
    the k-reciprocal set of query q is ``neighbours[q][is_reciprocal[q]]``.
    """
    query, bank, query_space = (F.normalize(x.detach().float(), dim=-1) for x in (query, bank, query_space))
    sims, idx = knn(query, bank, k, **search)
    if idx.numel() == 0:
        return idx, torch.zeros_like(idx, dtype=torch.bool)
    rows, pos = torch.unique(idx, return_inverse=True)
    kth = kth_similarity(bank[rows], query_space, k, **search)
    return idx, _is_member(sims, kth[pos])


def jaccard_distance(a: Tensor, a_mask: Tensor, b: Tensor, b_mask: Tensor) -> Tensor:
    """1 - |A & B| / |A | B| (eq. 6) for sets given as index rows [..., n] with membership masks.

    Indices within one set must be distinct (nearest-neighbour lists are). Broadcasts over leading dims;
    two empty sets are at distance 1.
    """
    equal = (a[..., :, None] == b[..., None, :]) & a_mask[..., :, None] & b_mask[..., None, :]
    inter = equal.sum((-2, -1))
    union = a_mask.sum(-1) + b_mask.sum(-1) - inter
    return 1.0 - inter.float() / union.clamp_min(1).float()


def _check_k(k: int, k_prime: int) -> None:
    if not 1 <= k_prime <= k:
        raise ValueError(f"need 1 <= k_prime <= k (the k' reliable neighbours are chosen among the k nearest), "
                         f"got k={k}, k_prime={k_prime}")


def hsng_neighbours(query_feats: Tensor, cross_bank: Tensor, self_bank: Tensor, *, k: int = 6,
                    k_prime: int = 4, use_faiss: bool = True, index: str = "Flat", index_params: str = "",
                    query_chunk: int = 65536) -> tuple[Tensor, Tensor]:
    """The k' most reliable cross-modal neighbours of each query (eq. 3-7).

    ``cross_bank`` holds the available features of the query's missing modality (images for a text with no
    image); ``self_bank`` those of the query's own modality (the query's own row may be in it or not).
    Returns (indices [Q,k'] into ``cross_bank``, Jaccard distances [Q,k'] of eq. 6). Members of R_k(q) come
    first by ascending distance (ties: higher cosine first); when fewer than k' are k-reciprocal, the rest
    is filled with the nearest non-reciprocal members of N_k(q) in cosine order, so the shape is fixed.
    """
    _check_k(k, k_prime)
    _check_2d("query_feats", query_feats)
    _check_2d("cross_bank", cross_bank, query_feats.shape[1])
    _check_2d("self_bank", self_bank, query_feats.shape[1])
    for name, bank in (("cross_bank", cross_bank), ("self_bank", self_bank)):
        if bank.shape[0] < k:
            raise ValueError(f"{name} has {bank.shape[0]} rows, fewer than k={k}; lower k or fill the bank")
    query, cross, own = (F.normalize(x.detach().float(), dim=-1) for x in (query_feats, cross_bank, self_bank))

    options = {"use_faiss": use_faiss, "index": index, "index_params": index_params}
    search_cross, search_own = NeighbourSearch(cross, **options), NeighbourSearch(own, **options)
    sims, idx = search_cross(query, k)  # N_k(q), eq. 3
    if idx.numel() == 0:
        return idx[:, :k_prime], sims[:, :k_prime]
    # Everything below works on the candidate rows of the cross bank only (at most Q*k of them, and their
    # self-modal neighbours), never on a full N x N matrix.
    cand = torch.unique(idx)
    cand_kth_own = search_own(cross[cand], k)[0][:, -1]
    cand_sims, cand_nbrs = search_cross(cross[cand], k)  # N_k(v_i)
    second = torch.unique(cand_nbrs)
    rest = second[~torch.isin(second, cand)]
    kth_cross = torch.empty(cross.shape[0])
    kth_cross[cand] = cand_sims[:, -1]
    if rest.numel():
        kth_cross[rest] = search_cross(cross[rest], k)[0][:, -1]
    cand_recip = _is_member(cand_sims, kth_cross[cand_nbrs])  # R_k(v_i), eq. 5

    out_idx, out_dist = [], []
    for rows in range(0, idx.shape[0], query_chunk):
        s, i = sims[rows:rows + query_chunk], idx[rows:rows + query_chunk]
        pos = torch.searchsorted(cand, i)
        recip = _is_member(s, cand_kth_own[pos])  # R_k(q), eq. 4
        dist = jaccard_distance(i[:, None, :], recip[:, None, :], cand_nbrs[pos], cand_recip[pos])  # eq. 6
        key = torch.where(recip, dist, torch.full_like(dist, 2.0))  # non-reciprocal last, in cosine order
        order = torch.sort(key, dim=1, stable=True).indices[:, :k_prime]
        out_idx.append(i.gather(1, order))
        out_dist.append(dist.gather(1, order))
    return torch.cat(out_idx), torch.cat(out_dist)


def plain_neighbours(query_feats: Tensor, cross_bank: Tensor, *, k_prime: int = 4,
                     **search) -> tuple[Tensor, Tensor]:
    """The k' nearest cross-modal neighbours by cosine alone (the paper's "FMC with plain nearest neighbours").

    Returns (indices [Q,k'] into ``cross_bank``, cosine distances 1 - cos [Q,k']). ``search``: knn's
    NeighbourSearch's use_faiss, index and index_params.
    """
    _check_k(k_prime, k_prime)
    query, cross = (F.normalize(x.detach().float(), dim=-1) for x in (query_feats, cross_bank))
    sims, idx = knn(query, cross, k_prime, **search)
    return idx, 1.0 - sims
