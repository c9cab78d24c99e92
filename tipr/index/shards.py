"""Image features written as they are computed, in shards that are complete or absent.

A shard is one ``.npz`` file in the shards folder: ``paths`` (relative to the gallery root), ``stamps``
(size and modification time of each file when it was read), ``features`` (float16 [n, d], L2-normalised)
and ``ok`` (False where the image could not be decoded). It is written under a temporary name and renamed,
so a killed run leaves whole shards only; the next run embeds what no shard holds yet. A changed file
(another size or modification time) is embedded again, a removed one is simply not looked up.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUFFIX = ".npz"


def file_stamps(paths: Sequence[str]) -> np.ndarray:
    """[n, 2] int64: size and modification time (ns) of each file; -1 where the file cannot be read."""
    out = np.full((len(paths), 2), -1, dtype=np.int64)
    for i, p in enumerate(paths):
        try:
            st = os.stat(p)
        except OSError:
            continue
        out[i] = (st.st_size, st.st_mtime_ns)
    return out


def write_shard(folder: Path, name: str, paths: Sequence[str], stamps: np.ndarray, features: np.ndarray,
                ok: np.ndarray) -> Path:
    """Write one shard atomically (temporary file, then rename)."""
    if not (len(paths) == len(stamps) == len(features) == len(ok)):
        raise ValueError(f"shard {name}: {len(paths)} paths, {len(stamps)} stamps, {len(features)} features, "
                         f"{len(ok)} flags")
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{name}{SUFFIX}"
    tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, paths=np.asarray(list(paths), dtype=str), stamps=np.asarray(stamps, dtype=np.int64),
                     features=np.asarray(features, dtype=np.float16), ok=np.asarray(ok, dtype=bool))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


@dataclass
class ShardCache:
    """Every feature the shards folder holds, looked up by (path, stamp); the last shard written wins."""

    folder: Path
    files: list[Path]
    where: dict[tuple[str, int, int], tuple[int, int]]  # (path, size, mtime) -> (file number, row)
    ok: dict[tuple[str, int, int], bool]
    dim: int | None

    @classmethod
    def read(cls, folder: str | os.PathLike) -> "ShardCache":
        folder = Path(folder)
        for leftover in folder.glob(".*.tmp"):  # a run killed while writing; nothing refers to these
            leftover.unlink(missing_ok=True)
        files = sorted(folder.glob(f"*{SUFFIX}"), key=lambda p: (p.stat().st_mtime_ns, p.name))
        where, ok, dim = {}, {}, None
        for n, file in enumerate(files):
            with np.load(file) as z:
                paths, stamps, flags = z["paths"], z["stamps"], z["ok"]
                dim = int(z["features"].shape[1]) if dim is None else dim
            for row, (p, (size, mtime), good) in enumerate(zip(paths.tolist(), stamps.tolist(), flags.tolist())):
                where[(p, size, mtime)] = (n, row)
                ok[(p, size, mtime)] = good
        return cls(folder, files, where, ok, dim)

    def missing(self, paths: Sequence[str], stamps: np.ndarray) -> list[int]:
        """Indices of the images no shard holds for their current stamp."""
        return [i for i, (p, (s, m)) in enumerate(zip(paths, stamps.tolist())) if (p, s, m) not in self.where]

    def gather(self, paths: Sequence[str], stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(features float16 [n, d], ok [n]) of the given images, which must all be in the cache."""
        keys = [(p, s, m) for p, (s, m) in zip(paths, stamps.tolist())]
        absent = [k[0] for k in keys if k not in self.where]
        if absent:
            raise KeyError(f"{len(absent)} images have no embedded features yet, e.g. {absent[:3]}")
        if self.dim is None:
            return np.zeros((0, 0), np.float16), np.zeros(0, bool)
        out = np.zeros((len(keys), self.dim), dtype=np.float16)
        ok = np.zeros(len(keys), dtype=bool)
        by_file: dict[int, list[tuple[int, int]]] = {}
        for i, k in enumerate(keys):
            n, row = self.where[k]
            by_file.setdefault(n, []).append((i, row))
        for n, pairs in by_file.items():
            with np.load(self.files[n]) as z:
                feats, flags = z["features"], z["ok"]
            dst, src = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
            out[dst], ok[dst] = feats[src], flags[src]
        return out, ok

    def prune(self, paths: Sequence[str], stamps: np.ndarray) -> list[Path]:
        """Delete the shards none of whose rows is still wanted; returns them."""
        live = {self.where[(p, s, m)][0] for p, (s, m) in zip(paths, stamps.tolist()) if (p, s, m) in self.where}
        gone = [f for n, f in enumerate(self.files) if n not in live]
        for f in gone:
            f.unlink(missing_ok=True)
        return gone


def plan_shards(pending: Sequence[str], shard_size: int) -> list[tuple[str, slice]]:
    """Names and ranges of the shards that will hold ``pending`` (paths), the same on every process."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    run = hashlib.sha1("\n".join(pending).encode("utf-8")).hexdigest()[:10]
    return [(f"{run}-{j:05d}", slice(start, start + shard_size))
            for j, start in enumerate(range(0, len(pending), shard_size))]
