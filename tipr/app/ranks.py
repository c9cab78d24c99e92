"""Where one image ranks for a query, counted among the best ``RANK_WITHIN`` results only: no action scans a
large gallery, and an image below them is reported as ranking beyond."""

from __future__ import annotations

import numpy as np

RANK_WITHIN = 1000


def rank_among(others: np.ndarray, score: float, *, complete: bool) -> int | None:
    """1-based rank of an item scoring ``score`` among the best scores of the other items (ties count in its
    favour); None when it scores below all of them and they are not all the others (it ranks beyond)."""
    ahead = int((np.asarray(others) > score).sum())
    if ahead == len(others) and not complete:
        return None
    return ahead + 1


def rank_text(rank: int | None) -> str:
    return f"#{rank}" if rank is not None else f"beyond #{RANK_WITHIN}"
