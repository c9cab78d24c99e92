"""Text-to-image retrieval metrics with the field's standard definitions (all in percent)."""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _as_tensor(x: ArrayLike) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


def _match_ranks(sim: torch.Tensor, match: torch.Tensor) -> torch.Tensor:
    """Sorted 0-based ranks of each query's true matches, padded with G up to the chunk's largest count."""
    num_gallery = sim.shape[1]
    width = int(match.sum(1).max())
    idx = torch.topk(match.float(), width, dim=1, sorted=False).indices  # the matches' gallery indices
    idx_valid = match.gather(1, idx)
    score = sim.gather(1, idx)[:, :, None]
    before = torch.arange(num_gallery)[None, None, :] < idx[:, :, None]
    rank = (sim[:, None, :] > score).sum(-1) + ((sim[:, None, :] == score) & before).sum(-1)
    return rank.masked_fill(~idx_valid, num_gallery).sort(1).values


def _query_scores(sim: torch.Tensor, match: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per query of a chunk: the 0-based rank of the first true match, AP and INP (fractions)."""
    ranks = _match_ranks(sim, match)
    num_matches = match.sum(1)
    is_match = ranks < sim.shape[1]  # padding of queries with fewer matches sits at rank G
    hit_number = torch.arange(1, ranks.shape[1] + 1, dtype=torch.float32)
    precision = torch.where(is_match, hit_number / (ranks + 1).float(), 0.0)
    last = ranks.masked_fill(~is_match, -1).max(1).values
    return ranks[:, 0], precision.sum(1) / num_matches, num_matches / (last + 1).float()


def rank_metrics(
    similarity: ArrayLike,
    query_pids: ArrayLike,
    gallery_pids: ArrayLike,
    *,
    ks: tuple[int, ...] = (1, 5, 10),
    chunk: int = 256,
    max_chunk_elements: int = 2**26,
) -> dict[str, float]:
    """R@k (CMC), mAP and mINP of every query ranking the whole gallery by descending similarity.

    AP averages the precision at each true match; INP is (number of true matches) / (rank of the last
    one). Queries whose identity is absent from the gallery cannot be scored and are left out. Equal scores
    rank in gallery order (a stable sort's order). Queries are scored ``chunk`` at a time, fewer where
    queries x matches x gallery would pass ``max_chunk_elements`` (identities with many images).
    """
    sim = _as_tensor(similarity).float()
    qp, gp = _as_tensor(query_pids).reshape(-1), _as_tensor(gallery_pids).reshape(-1)
    if sim.ndim != 2 or sim.shape != (qp.numel(), gp.numel()):
        raise ValueError(
            f"similarity must be [num_queries, num_gallery] = [{qp.numel()}, {gp.numel()}], got {tuple(sim.shape)}"
        )
    match = gp[None, :] == qp[:, None]
    num_matches = match.sum(1)
    valid = num_matches > 0
    if not bool(valid.any()):
        raise ValueError("no query has a matching identity in the gallery")
    sim, match = sim[valid], match[valid]

    # Rank only the true matches instead of sorting the whole gallery: a match's 0-based rank is the number
    # of gallery items scored higher, plus equal-scored ones earlier in the gallery. Each chunk's matches
    # have their own count, so chunks give per-query scores, which are joined.
    rows = max(1, min(chunk, max_chunk_elements // (int(num_matches.max()) * sim.shape[1])))
    parts = [_query_scores(sim[i : i + rows], match[i : i + rows]) for i in range(0, len(sim), rows)]
    first, ap, inp = (torch.cat(p) for p in zip(*parts))
    metrics = {f"R{k}": float((first < k).float().mean() * 100) for k in ks}
    metrics["mAP"] = float(ap.mean() * 100)
    metrics["mINP"] = float(inp.mean() * 100)
    return metrics


def format_table(rows: dict[str, dict[str, float]], keys: tuple[str, ...] = ("R1", "R5", "R10", "mAP", "mINP")) -> str:
    """A Markdown table, one row per named result."""
    lines = ["| | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.2f}" for k in keys) + " |")
    return "\n".join(lines)
