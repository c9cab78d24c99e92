"""Markdown tables of a study: mean ± sample std over seeds, and how many seeds each row has."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

KEYS = ("R1", "R5", "R10", "mAP", "mINP")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    if not values:
        raise ValueError("mean_std needs at least one value")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def format_mean_std(values: Sequence[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.2f}" if len(values) == 1 else f"{mean:.2f} ± {std:.2f}"


def metrics_table(rows: Mapping[str, Sequence[Mapping[str, float]]], *, expected_seeds: int | None = None,
                  unseeded: Collection[str] = (), keys: Sequence[str] = KEYS) -> str:
    """One row per name: each metric as mean ± std over the given runs' metrics, and the number of seeds done.

    `unseeded` rows (a deterministic ranker, a model evaluated once) show "–" for seeds.
    """
    lines = ["| row | " + " | ".join(keys) + " | seeds |", "|---" * (len(keys) + 2) + "|"]
    for name, runs in rows.items():
        seeds = f"{len(runs)}" + (f" of {expected_seeds}" if expected_seeds and len(runs) != expected_seeds else "")
        cells = [format_mean_std([r[k] for r in runs]) for k in keys] if runs else ["–"] * len(keys)
        seeds = "–" if name in unseeded else seeds if runs else "pending"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {seeds} |")
    return "\n".join(lines)
