"""Text-to-image retrieval metrics with the field's standard definitions (all in percent)."""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _as_tensor(x: ArrayLike) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


def rank_metrics(
    similarity: ArrayLike, query_pids: ArrayLike, gallery_pids: ArrayLike, *, ks: tuple[int, ...] = (1, 5, 10)
) -> dict[str, float]:
    """R@k (CMC), mAP and mINP of every query ranking the whole gallery by descending similarity.

    AP averages the precision at each true match; INP is (number of true matches) / (rank of the last
    one). Queries whose identity is absent from the gallery cannot be scored and are left out.
    """
    sim = _as_tensor(similarity).float()
    qp, gp = _as_tensor(query_pids).reshape(-1), _as_tensor(gallery_pids).reshape(-1)
    if sim.ndim != 2 or sim.shape != (qp.numel(), gp.numel()):
        raise ValueError(
            f"similarity must be [num_queries, num_gallery] = [{qp.numel()}, {gp.numel()}], got {tuple(sim.shape)}"
        )
    order = torch.argsort(sim, dim=1, descending=True, stable=True)
    matches = (gp[order] == qp[:, None]).float()
    num_matches = matches.sum(1)
    valid = num_matches > 0
    if not bool(valid.any()):
        raise ValueError("no query has a matching identity in the gallery")
    matches, num_matches = matches[valid], num_matches[valid]

    positions = torch.arange(1, matches.shape[1] + 1, dtype=torch.float32)
    first_hit = matches.argmax(1)  # index of the first true match
    metrics = {f"R{k}": float((first_hit < k).float().mean() * 100) for k in ks}
    precision_at_hits = matches.cumsum(1) / positions * matches
    metrics["mAP"] = float((precision_at_hits.sum(1) / num_matches).mean() * 100)
    last_hit = matches.shape[1] - 1 - matches.flip(1).argmax(1)
    metrics["mINP"] = float((num_matches / (last_hit + 1).float()).mean() * 100)
    return metrics


def format_table(rows: dict[str, dict[str, float]], keys: tuple[str, ...] = ("R1", "R5", "R10", "mAP", "mINP")) -> str:
    """A Markdown table, one row per named result."""
    lines = ["| | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.2f}" for k in keys) + " |")
    return "\n".join(lines)
