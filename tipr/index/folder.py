"""The index folder: what ``python -m tipr.index`` writes and the app and scripts load.

```
INDEX_FOLDER/
  manifest.json        format, model fingerprint, gallery root, factory, search settings, current build
  build-<id>/
    images.txt         one image path per line (relative to the gallery root), row i of the index
    pids.npy           person id per image (-1: unknown)
    features.npy       float16 [N, d], L2-normalised: exact scores, re-scoring, what a row looks like
    index.faiss        the faiss index over the same rows
    text.npz/.json     the gallery's captions and their noun phrases with features, when it has captions
  shards/              the embedding cache that makes runs resumable and incremental (see shards.py)
```
A new build is written beside the old one and ``manifest.json`` is replaced last, so readers see the old
index or the new one, never half of each. Loading memory-maps the features and what faiss can map.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tipr.index.build import is_lossy

FORMAT = "tipr-index/1"
MANIFEST = "manifest.json"
SHARDS = "shards"


class IndexFolderError(ValueError):
    """An index folder cannot be read or used; the message says what to do."""


def is_index_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / MANIFEST).is_file()


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary file in the same folder, then rename), so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_format_json(path: Path, fmt: str, key: str, *, what: str, error: type[Exception] = ValueError,
                     hint: str = "") -> dict[str, Any]:
    """A JSON object whose "format" is `fmt` and whose `key` is a list; `error` says what is wrong otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise error(f"cannot read {what} {path}: {err}.{' ' + hint if hint else ''}") from None
    if not isinstance(data, dict) or data.get("format") != fmt or not isinstance(data.get(key), list):
        raise error(f"{path} is not {what} (expected a JSON object with \"format\": \"{fmt}\" and a \"{key}\" "
                    "list)")
    return data


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexFolderError(f"{folder} is not a tipr index folder (no {MANIFEST}); build one with "
                               f"`python -m tipr.index --model M --gallery G --out {folder}`") from None
    except (OSError, ValueError) as err:
        raise IndexFolderError(f"{folder / MANIFEST} is unreadable ({err}); build the index again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexFolderError(f"{folder / MANIFEST} is not a {FORMAT} manifest; "
                               f"build the index again with this tipr")
    return manifest


@dataclass
class Text:
    """The gallery's captions and their noun phrases, with L2-normalised features."""

    captions: list[str] = field(default_factory=list)
    caption_pids: list[int] = field(default_factory=list)
    caption_features: np.ndarray | None = None
    phrases: list[str] = field(default_factory=list)
    phrase_features: np.ndarray | None = None


def write_build(folder: Path, *, manifest: dict[str, Any], images: list[str], pids: np.ndarray,
                features: np.ndarray, index, text: Text | None = None) -> Path:
    """Write a complete build next to the current one, switch the manifest to it, delete the old build."""
    import faiss

    folder.mkdir(parents=True, exist_ok=True)
    name = f"build-{uuid.uuid4().hex[:8]}"
    tmp = folder / f".{name}.tmp"
    tmp.mkdir()
    try:
        (tmp / "images.txt").write_text("".join(f"{p}\n" for p in images), encoding="utf-8")
        np.save(tmp / "pids.npy", np.asarray(pids, dtype=np.int64))
        np.save(tmp / "features.npy", np.asarray(features, dtype=np.float16))
        faiss.write_index(index, str(tmp / "index.faiss"))
        if text is not None and text.captions:
            np.savez(tmp / "text.npz", captions=text.caption_features, phrases=text.phrase_features)
            write_json(tmp / "text.json", {"captions": text.captions, "caption_pids": text.caption_pids,
                                           "phrases": text.phrases})
        os.replace(tmp, folder / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_json(folder / MANIFEST, {**manifest, "format": FORMAT, "build": name, "count": len(images),
                                   "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    for stale in folder.glob("build-*"):  # the previous build, and any a killed run left behind
        if stale.name != name:
            shutil.rmtree(stale, ignore_errors=True)
    for stale in folder.glob(".build-*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    return folder / name


def read_faiss(path: Path, factory: str):
    """The faiss index at ``path``, memory-mapped where its type allows (inverted lists, flat codes)."""
    import faiss

    flags = faiss.IO_FLAG_MMAP if factory.upper().startswith(("IVF", "OPQ", "PCA")) or ",IVF" in factory.upper() \
        else faiss.IO_FLAG_MMAP_IFC
    try:
        return faiss.read_index(str(path), flags | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError:
        return faiss.read_index(str(path))


class _RowReader:
    """Rows of an .npy file by positioned reads. Reading them through the memory map would map whole 64 KB
    neighbourhoods of the page cache per row, and after a few hundred queries the entire file counts as the
    process's resident memory."""

    def __init__(self, path: Path, array: np.memmap):
        self.path, self.dtype, self.dim = path, array.dtype, array.shape[1]
        self.offset, self.row_bytes = array.offset, array.dtype.itemsize * array.shape[1]
        self._fd = os.open(path, os.O_RDONLY)  # pread is positional: threads may share it

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.dim), np.float32)
        for i, row in enumerate(rows.tolist()):
            data = os.pread(self._fd, self.row_bytes, self.offset + row * self.row_bytes)
            out[i] = np.frombuffer(data, self.dtype)
        return out

    def __del__(self) -> None:
        os.close(self._fd)


class IndexFolder:
    """A loaded index folder: rows are images; ``search`` gives exact or re-scored inner products, best first."""

    def __init__(self, folder: str | os.PathLike, *, manifest: dict[str, Any] | None = None):
        self.folder = Path(folder).resolve()
        self.manifest = manifest if manifest is not None else read_manifest(self.folder)
        build = self.folder / self.manifest["build"]
        try:
            self.images = (build / "images.txt").read_text(encoding="utf-8").splitlines()
            self.pids = np.load(build / "pids.npy")
            self.features = np.load(build / "features.npy", mmap_mode="r")
            self._rows = _RowReader(build / "features.npy", self.features)
            self.index = read_faiss(build / "index.faiss", self.manifest["factory"])
        except (OSError, ValueError, RuntimeError) as err:
            raise IndexFolderError(f"the index folder {self.folder} is incomplete or corrupt ({err}); "
                                   f"build it again") from None
        if not (len(self.images) == len(self.pids) == len(self.features) == self.index.ntotal):
            raise IndexFolderError(f"the index folder {self.folder} is inconsistent ({len(self.images)} images, "
                                   f"{len(self.features)} features, {self.index.ntotal} indexed); build it again")
        self.root = self._root()
        self.rescore = int(self.manifest.get("rescore", 0)) if is_lossy(self.manifest["factory"]) else 0
        nprobe = self.manifest.get("nprobe")
        if nprobe:
            self.set_nprobe(int(nprobe))
        self.text = self._text(build)

    def _root(self) -> Path:
        rel = self.manifest.get("root_relative")
        if rel is not None and (self.folder / rel).is_dir():  # moved together with its gallery
            return (self.folder / rel).resolve()
        return Path(self.manifest["root"])

    def _text(self, build: Path) -> Text:
        if not (build / "text.json").is_file():
            return Text(caption_features=np.zeros((0, self.dim), np.float32),
                        phrase_features=np.zeros((0, self.dim), np.float32))
        meta = json.loads((build / "text.json").read_text(encoding="utf-8"))
        with np.load(build / "text.npz") as z:
            return Text(meta["captions"], meta["caption_pids"], z["captions"].astype(np.float32),
                        meta["phrases"], z["phrases"].astype(np.float32))

    def __len__(self) -> int:
        return len(self.images)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def model(self) -> str:
        return self.manifest["model"]

    def path(self, row: int) -> str:
        return os.path.join(self.root, self.images[row])

    def set_nprobe(self, nprobe: int) -> None:
        import faiss

        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            ivf.nprobe = max(1, min(int(nprobe), ivf.nlist))

    def vectors(self, rows) -> np.ndarray:
        """Exact features (float32) of the given rows, read from the features file."""
        return self._rows(np.asarray(rows, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores [Q, k], rows [Q, k]) by inner product, best first; k is capped at the gallery size.

        With a compressed index the best ``rescore * k`` candidates are scored again with the exact features.
        Missing results (fewer than k found) have row -1 and score -inf.
        """
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(int(k), len(self)))
        if not self.rescore:
            scores, rows = self.index.search(q, k)
            return scores, rows
        _, cand = self.index.search(q, min(len(self), k * self.rescore))
        out_s = np.full((len(q), k), -np.inf, np.float32)
        out_r = np.full((len(q), k), -1, np.int64)
        for i in range(len(q)):
            rows = cand[i][cand[i] >= 0]
            exact = self.vectors(rows) @ q[i]
            best = np.argsort(-exact, kind="stable")[:k]
            out_s[i, :len(best)], out_r[i, :len(best)] = exact[best], rows[best]
        return out_s, out_r


def open_index(folder: str | os.PathLike, *, model_fingerprint: str | None = None) -> IndexFolder:
    """Load an index folder; with ``model_fingerprint``, refuse one built with another model."""
    index = IndexFolder(folder)
    if model_fingerprint is not None and index.model != model_fingerprint:
        raise IndexFolderError(f"the index {index.folder} was built with the model {index.model}, not "
                               f"{model_fingerprint}; pass that model or build the index again with "
                               f"`python -m tipr.index --model M --gallery {index.root} --out {index.folder}`")
    return index
