"""The app's gallery: images (with captions and person ids when known), embedded once and indexed with faiss.

A gallery is one of: a folder of images (optionally with a ``captions.json``, see ``read_captions_file``), a
dataset root in the CUHK-PEDES / ICFG-PEDES / RSTPReid layout (its test split), or a saved index folder.
The embedded gallery is saved in ``<gallery>/.tipr-index/`` (or under the cache folder when the gallery is
read-only) and reused while its fingerprint holds: the paths, sizes and modification times of the images,
the captions and the model. When only modification times changed (a fresh git checkout of a Space), the
file contents are compared before anything is embedded again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tipr.data.images import IMAGE_SUFFIXES, UnreadableImage, read_image

log = logging.getLogger("tipr.app")

CAPTIONS_FILE = "captions.json"
CAPTIONS_FORMAT = "tipr-gallery-captions/1"
INDEX_DIRNAME = ".tipr-index"
INDEX_FORMAT = "tipr-gallery-index/1"
DATASET_FORMATS = ("cuhk-pedes", "icfg-pedes", "rstpreid")
_META = "meta.json"


class GalleryError(ValueError):
    """The gallery cannot be read or indexed; the message names the path and what to do."""


@dataclass
class GallerySource:
    """What a gallery holds before embedding: absolute image paths, and its text side when it has one.

    ``caption_images[j]`` is the image caption j describes (-1 when the format does not say); ``held_out``
    maps a captionless image to captions hidden from the gallery, which the app uses to show how completion
    changes that image's rank. Person ids are -1 where unknown.
    """

    root: Path
    kind: str
    image_paths: list[str]
    image_pids: list[int]
    captions: list[str] = field(default_factory=list)
    caption_pids: list[int] = field(default_factory=list)
    caption_images: list[int] = field(default_factory=list)
    held_out: dict[int, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.image_pids) != len(self.image_paths):
            raise GalleryError(f"{self.root}: {len(self.image_paths)} images but {len(self.image_pids)} person ids")
        if not (len(self.captions) == len(self.caption_pids) == len(self.caption_images)):
            raise GalleryError(f"{self.root}: captions, caption_pids and caption_images differ in length")

    @property
    def captionless(self) -> list[int]:
        """Images known to have no caption in the gallery (none when captions are not linked to images)."""
        if not self.captions or any(i < 0 for i in self.caption_images):
            return sorted(self.held_out)
        described = set(self.caption_images)
        return [i for i in range(len(self.image_paths)) if i not in described]

    def text_digest(self) -> str:
        payload = [self.kind, self.image_pids, self.captions, self.caption_pids, self.caption_images,
                   sorted((int(k), v) for k, v in self.held_out.items())]
        return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------- reading
def read_captions_file(root: Path) -> GallerySource:
    """``captions.json``: {"format": "tipr-gallery-captions/1", "images": [{"path": "imgs/a.png", "pid": 3,
    "captions": ["..."], "held_out_captions": ["..."]}, ...]}; an image with no captions is captionless."""
    path = root / CAPTIONS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise GalleryError(f"cannot read {path}: {err}. Fix the file or remove it to index the images alone") from None
    if not isinstance(data, dict) or data.get("format") != CAPTIONS_FORMAT or not isinstance(data.get("images"), list):
        raise GalleryError(f"{path} is not a tipr gallery captions file (expected a JSON object with "
                           f"\"format\": \"{CAPTIONS_FORMAT}\" and an \"images\" list)")
    src = GallerySource(root=root, kind="captions file", image_paths=[], image_pids=[])
    missing = []
    for i, item in enumerate(data["images"]):
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise GalleryError(f"{path}: entry {i} needs a \"path\" string (relative to {root})")
        image = (root / item["path"]).resolve()
        if not image.is_file():
            missing.append(item["path"])
            continue
        row = len(src.image_paths)
        src.image_paths.append(str(image))
        src.image_pids.append(int(item.get("pid", -1)))
        captions = [c for c in item.get("captions", []) if isinstance(c, str) and c.strip()]
        src.captions += captions
        src.caption_pids += [src.image_pids[-1]] * len(captions)
        src.caption_images += [row] * len(captions)
        held = [c for c in item.get("held_out_captions", []) if isinstance(c, str) and c.strip()]
        if held and not captions:
            src.held_out[row] = held
    if missing:
        raise GalleryError(f"{path} lists {len(missing)} images that are not under {root}, e.g. "
                           f"{', '.join(missing[:3])}; restore them or drop their entries")
    if not src.image_paths:
        raise GalleryError(f"{path} lists no images; add entries or remove the file")
    return src


def read_dataset(root: Path) -> GallerySource | None:
    """The test split of a dataset root in one of the public layouts, or None when ``root`` is not one."""
    from tipr.data import MissingImagesError, load_dataset

    for name in DATASET_FORMATS:
        try:
            dataset = load_dataset(name, root)
        except MissingImagesError as err:
            raise GalleryError(str(err)) from None
        except FileNotFoundError:
            continue
        test = dataset.test
        if not test.image_paths:
            raise GalleryError(f"{root} is a {dataset.name} dataset but its test split has no images; "
                               f"pass a folder of images instead")
        return GallerySource(root=Path(dataset.root), kind=dataset.name, image_paths=list(test.image_paths),
                             image_pids=list(test.image_pids), captions=list(test.captions),
                             caption_pids=list(test.caption_pids), caption_images=[-1] * len(test.captions))
    return None


def scan_images(root: Path) -> list[str]:
    """Image files under ``root`` (recursively, hidden folders skipped), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [os.path.join(dirpath, f) for f in sorted(filenames)
                  if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return [str(Path(p).resolve()) for p in found]


def read_gallery(path: str | os.PathLike) -> tuple[GallerySource, Path | None]:
    """The gallery at ``path`` and, when ``path`` is a saved index folder, that folder."""
    path = Path(path).expanduser()
    if not path.exists():
        raise GalleryError(f"gallery {path} does not exist; pass a folder of images, a dataset root "
                           f"(CUHK-PEDES / ICFG-PEDES / RSTPReid layout) or a saved index folder")
    if path.is_file() and path.name == _META or (path / _META).is_file():
        index_dir = path.parent if path.is_file() else path
        meta = _read_meta(index_dir)
        if meta is None:
            raise GalleryError(f"{index_dir} is not a tipr gallery index (its {_META} is unreadable or of another "
                               f"format); pass the gallery folder itself to index it again")
        root = (index_dir / meta["root"]).resolve()
        if not root.is_dir():
            raise GalleryError(f"the index {index_dir} belongs to the gallery {root}, which does not exist; "
                               f"restore the images or pass another gallery")
        source, _ = read_gallery(root)
        return source, index_dir
    if path.is_file():
        raise GalleryError(f"gallery {path} is a file; pass a folder of images, a dataset root or a saved index")
    path = path.resolve()
    if (path / CAPTIONS_FILE).is_file():
        return read_captions_file(path), None
    dataset = read_dataset(path)
    if dataset is not None:
        return dataset, None
    images = scan_images(path)
    if not images:
        raise GalleryError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {path}")
    return GallerySource(root=path, kind="folder", image_paths=images, image_pids=[-1] * len(images)), None


# ---------------------------------------------------------------------------------------------- fingerprint
def _rel(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def file_stats(source: GallerySource) -> list[list[Any]]:
    """[relative path, size, mtime_ns] per image."""
    stats = []
    for p in source.image_paths:
        st = os.stat(p)
        stats.append([_rel(p, source.root), st.st_size, st.st_mtime_ns])
    return stats


def _sha1(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


def fingerprints(source: GallerySource, model_fingerprint: str, stats: list[list[Any]] | None = None,
                 *, contents: bool = False) -> str:
    """sha256 of the index format, model, captions and images (path, size, mtime; or path, size, content)."""
    stats = stats if stats is not None else file_stats(source)
    if contents:
        files = [[rel, size, _sha1(p)] for (rel, size, _), p in zip(stats, source.image_paths)]
    else:
        files = stats
    payload = [INDEX_FORMAT, model_fingerprint, source.text_digest(), files]
    return hashlib.sha256(json.dumps(payload).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------- index
@dataclass
class GalleryIndex:
    """Normalised features of a gallery's images, captions and caption noun phrases, and a faiss index."""

    source: GallerySource
    image_features: np.ndarray  # [N, d] float32, L2-normalised
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


def _read_meta(index_dir: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((index_dir / _META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == INDEX_FORMAT else None


def _load_arrays(index_dir: Path, meta: dict[str, Any], source: GallerySource, fingerprint: str) -> GalleryIndex | None:
    import faiss

    try:
        index = faiss.read_index(str(index_dir / "images.faiss"))
        with np.load(index_dir / "text.npz") as npz:
            captions, phrases = npz["captions"], npz["phrases"]
    except (OSError, RuntimeError, ValueError, KeyError) as err:
        log.warning("ignoring the unreadable gallery index at %s (%s); embedding again", index_dir, err)
        return None
    kept = set(meta.get("images", []))  # unreadable images were left out when the index was built
    source = subset(source, [i for i, p in enumerate(source.image_paths) if _rel(p, source.root) in kept])
    if index.ntotal != len(source.image_paths) or len(captions) != len(source.captions):
        return None
    images = index.reconstruct_n(0, index.ntotal)
    return GalleryIndex(source=source, image_features=images, caption_features=captions,
                        phrases=list(meta.get("phrases", [])), phrase_features=phrases, fingerprint=fingerprint,
                        location=index_dir, faiss_index=index)


def default_index_dirs(root: Path, cache_dir: Path) -> list[Path]:
    """Where a gallery's index may live: next to it, then the cache folder (for read-only galleries)."""
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return [root / INDEX_DIRNAME, cache_dir / "galleries" / f"{root.name}-{key}"]


def find_saved_index(source: GallerySource, model_fingerprint: str, candidates: Sequence[Path],
                     stats: list[list[Any]] | None = None) -> GalleryIndex | None:
    """A saved index that matches the gallery and the model, or None."""
    stats = stats if stats is not None else file_stats(source)
    quick = fingerprints(source, model_fingerprint, stats)
    content: str | None = None
    for index_dir in candidates:
        meta = _read_meta(index_dir)
        if meta is None or meta.get("model") != model_fingerprint:
            continue
        if meta.get("fingerprint") == quick:
            found = _load_arrays(index_dir, meta, source, quick)
        else:
            # same files under new modification times (a git checkout): compare contents before re-embedding
            if content is None:
                content = fingerprints(source, model_fingerprint, stats, contents=True)
            if meta.get("content_fingerprint") != content:
                continue
            found = _load_arrays(index_dir, meta, source, quick)
            if found is not None and _writable(index_dir):
                meta["fingerprint"] = quick
                _write_json(index_dir / _META, meta)
        if found is not None:
            return found
    return None


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def save_index(index: GalleryIndex, index_dir: Path, *, model_fingerprint: str, content_fingerprint: str) -> Path:
    """Write the index into ``index_dir`` (built in a sibling temporary folder, then swapped in).

    ``content_fingerprint`` is that of the gallery as read, unreadable images included, like ``index.fingerprint``.
    """
    import faiss

    source = index.source
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=index_dir.parent, prefix=f".{index_dir.name}.tmp-"))
    try:
        faiss.write_index(index.faiss_index, str(tmp / "images.faiss"))
        np.savez(tmp / "text.npz", captions=index.caption_features, phrases=index.phrase_features)
        meta = {
            "format": INDEX_FORMAT,
            "fingerprint": index.fingerprint,
            "content_fingerprint": content_fingerprint,
            "model": model_fingerprint,
            # next to the gallery the index names it relatively, so the pair can be moved or shipped together
            "root": (os.path.relpath(source.root, index_dir) if index_dir.resolve().is_relative_to(source.root)
                     else str(source.root)),
            "kind": source.kind,
            "images": [_rel(p, source.root) for p in source.image_paths],
            "num_captions": len(source.captions),
            "phrases": index.phrases,
            "dim": index.dim,
        }
        _write_json(tmp / _META, meta)
        old = index_dir.with_name(f".{index_dir.name}.old-{uuid.uuid4().hex[:8]}")
        if index_dir.exists():
            os.replace(index_dir, old)
        os.replace(tmp, index_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    index.location = index_dir
    return index_dir


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------- embedding
EmbedImages = Callable[[list[Any]], np.ndarray]  # decoded PIL images -> [n, d] normalised features
EmbedTexts = Callable[[list[str]], np.ndarray]


def subset(source: GallerySource, rows: Sequence[int]) -> GallerySource:
    """The source restricted to the given image rows (their captions follow them)."""
    if len(rows) == len(source.image_paths):
        return source
    new_row = {old: new for new, old in enumerate(rows)}
    cap_keep = [j for j, img in enumerate(source.caption_images) if img < 0 or img in new_row]
    return GallerySource(
        root=source.root, kind=source.kind,
        image_paths=[source.image_paths[i] for i in rows], image_pids=[source.image_pids[i] for i in rows],
        captions=[source.captions[j] for j in cap_keep], caption_pids=[source.caption_pids[j] for j in cap_keep],
        caption_images=[new_row.get(source.caption_images[j], -1) for j in cap_keep],
        held_out={new_row[i]: c for i, c in source.held_out.items() if i in new_row})


def drop_unreadable(source: GallerySource) -> GallerySource:
    """The source without the images that cannot be decoded (logged)."""
    bad = {}
    for i, p in enumerate(source.image_paths):
        try:
            read_image(p, max_side=64)
        except (UnreadableImage, FileNotFoundError) as err:
            bad[i] = str(err)
    if not bad:
        return source
    log.warning("skipping %d unreadable gallery images, e.g. %s", len(bad), "; ".join(list(bad.values())[:3]))
    if len(bad) == len(source.image_paths):
        raise GalleryError(f"none of the {len(bad)} images under {source.root} can be read, e.g. "
                           f"{next(iter(bad.values()))}")
    return subset(source, [i for i in range(len(source.image_paths)) if i not in bad])


def caption_phrases(captions: Sequence[str]) -> list[str]:
    """The distinct normalised noun phrases of the captions, sorted."""
    if not captions:
        return []
    from tipr.ecca.noun_phrases import caption_noun_phrases

    return sorted({p for c in dict.fromkeys(captions) for p in caption_noun_phrases(c)})


def build_index(source: GallerySource, embed_images: EmbedImages, embed_texts: EmbedTexts, fingerprint: str,
                *, batch_size: int = 64) -> GalleryIndex:
    """Embed every image (batches of ``batch_size``, decoded as evaluation does), caption and noun phrase."""
    feats = []
    for start in range(0, len(source.image_paths), batch_size):
        chunk = source.image_paths[start:start + batch_size]
        feats.append(embed_images([read_image(p) for p in chunk]))
        log.info("embedded %d / %d gallery images", start + len(chunk), len(source.image_paths))
    image_features = np.concatenate(feats).astype(np.float32)
    dim = image_features.shape[1]

    def texts(items: Sequence[str]) -> np.ndarray:
        if not items:
            return np.zeros((0, dim), np.float32)
        chunks = [embed_texts(list(items[i:i + 256])) for i in range(0, len(items), 256)]
        return np.concatenate(chunks).astype(np.float32)

    phrases = caption_phrases(source.captions)
    return GalleryIndex(source=source, image_features=image_features, caption_features=texts(source.captions),
                        phrases=phrases, phrase_features=texts(phrases), fingerprint=fingerprint)


def load_or_build(path: str | os.PathLike, *, model_fingerprint: str, embed_images: EmbedImages,
                  embed_texts: EmbedTexts, cache_dir: str | os.PathLike) -> GalleryIndex:
    """The gallery's index: a saved one when it still matches the images and the model, else embedded now
    and saved next to the gallery (or in ``cache_dir`` when the gallery folder is read-only)."""
    source, index_dir = read_gallery(path)
    candidates = ([index_dir] if index_dir else []) + default_index_dirs(source.root, Path(cache_dir))
    stats = file_stats(source)
    found = find_saved_index(source, model_fingerprint, candidates, stats)
    if found is not None:
        log.info("reusing the gallery index at %s (%d images)", found.location, len(found))
        return found
    usable = drop_unreadable(source)
    log.info("embedding the gallery %s (%d images, %d captions)", source.root, len(usable.image_paths),
             len(usable.captions))
    index = build_index(usable, embed_images, embed_texts, fingerprints(source, model_fingerprint, stats))
    content = fingerprints(source, model_fingerprint, stats, contents=True)
    for target in candidates:
        if _writable(target.parent):
            try:
                save_index(index, target, model_fingerprint=model_fingerprint, content_fingerprint=content)
                log.info("saved the gallery index to %s", target)
                break
            except OSError as err:
                log.warning("could not save the gallery index to %s (%s)", target, err)
    else:
        log.warning("no writable place for the gallery index; it will be embedded again at the next start")
    return index


# ---------------------------------------------------------------------------------------------- writing
def test_records(dataset_root: str | os.PathLike) -> list[tuple[str, int, list[str]]]:
    """(image path, person id, its own captions) per test image of a dataset in a public layout."""
    from tipr.data.readers import resolve_format

    source = read_dataset(Path(dataset_root))
    if source is None:
        raise GalleryError(f"{dataset_root} is not a dataset root in the CUHK-PEDES, ICFG-PEDES or RSTPReid layout")
    fmt = resolve_format(source.kind)
    anno = next(Path(source.root) / n for n in fmt.annotation_files if (Path(source.root) / n).is_file())
    records = [r for r in json.loads(anno.read_text(encoding="utf-8")) if r["split"] == "test"]
    return [(os.path.normpath(Path(source.root) / "imgs" / r[fmt.path_field]), int(r["id"]), list(r["captions"]))
            for r in records]


def write_gallery(dataset_root: str | os.PathLike, out: str | os.PathLike, *, captionless: float = 0.2,
                  seed: int = 0, limit: int | None = None) -> Path:
    """Copy a dataset's test split into a gallery folder with a ``captions.json``, hiding the captions of a
    ``captionless`` fraction of the images (kept as ``held_out_captions``, so the app can show how
    completion changes their rank). Returns the gallery folder."""
    import random

    if not 0.0 <= captionless < 1.0:
        raise ValueError(f"captionless must be a fraction in [0, 1), got {captionless}")
    records = test_records(dataset_root)[:limit]
    out = Path(out)
    (out / "imgs").mkdir(parents=True, exist_ok=True)
    hidden = set(random.Random(seed).sample(range(len(records)), round(captionless * len(records))))
    images = []
    for i, (path, pid, captions) in enumerate(records):
        name = "imgs/" + "_".join(Path(path).parts[-2:])  # the parent folder keeps same-named files apart
        shutil.copyfile(path, out / name)
        entry: dict[str, Any] = {"path": name, "pid": pid, "captions": [] if i in hidden else captions}
        if i in hidden:
            entry["held_out_captions"] = captions
        images.append(entry)
    _write_json(out / CAPTIONS_FILE, {"format": CAPTIONS_FORMAT, "images": images})
    return out
