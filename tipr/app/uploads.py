"""Images from users: bounded decoding and unzipping, refusals summarised, and where the stored copies live.

Every limit is a field of ``UploadLimits`` (docs/app.md lists them). Stored copies are PNGs at most
``max_side`` pixels long, kept in one folder per app run (``UploadStore``) that a later start removes.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import threading
import uuid
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

from PIL import Image

from tipr.config import dataclass_from_dict
from tipr.data.images import IMAGE_SUFFIXES, ImageTooLarge, UnreadableImage, read_image

try:
    import fcntl
except ImportError:  # Windows: run folders are not locked, so leftovers are not swept
    fcntl = None

log = logging.getLogger("tipr.app")
_CHUNK = 1 << 20
_SMALL_MEMBER = 1 << 20  # members that unpack to less are never refused for their compression ratio


@dataclass(frozen=True)
class UploadLimits:
    """What one upload, one session and the whole app may hold and cost."""

    max_side: int = 512  # long side of a stored image: pedestrian crops gain nothing above it
    max_pixels: int = 25_000_000  # pixels decoded per image (JPEGs count after reduced-size decoding)
    images_per_upload: int = 1000
    member_bytes: int = 32 << 20  # one zip member, unpacked
    upload_bytes: int = 512 << 20  # all zip members of one upload, unpacked
    compression_ratio: int = 100  # unpacked / packed size of a zip member over 1 MB: zip bombs reach 1000
    images_per_session: int = 1000
    images_total: int = 10_000  # stored images of all sessions of one app run

    def __post_init__(self):
        bad = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
               if not isinstance(getattr(self, f.name), int) or getattr(self, f.name) < 1]
        if bad:
            raise ValueError(f"upload limits must be positive integers, got {', '.join(bad)}")

    @classmethod
    def parse(cls, settings: Iterable[str]) -> "UploadLimits":
        """Limits from ``NAME=VALUE`` strings (``max_pixels=40_000_000``), the rest at their defaults."""
        values = {}
        for setting in settings:
            name, _, value = setting.partition("=")
            try:
                values[name.strip()] = int(value.strip().replace("_", ""))
            except ValueError:
                raise ValueError(f"upload limit {setting!r} is not NAME=INTEGER, e.g. max_pixels=40000000") from None
        return dataclass_from_dict(cls, values)


LIMITS = UploadLimits()


class UploadError(ValueError):
    """A user's file cannot be used; the message says which file and what to do, ``reason`` the kind of fault."""

    def __init__(self, message: str, reason: str = "Not usable"):
        super().__init__(message)
        self.reason = reason


def _mb(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MB"


def open_upload(source: str | os.PathLike | io.BytesIO, *, name: str | None = None,
                limits: UploadLimits = LIMITS) -> Image.Image:
    """Decode a user's image within ``limits`` (at most ``max_side`` long); errors name it as the user does."""
    name = name or Path(source).name
    try:
        return read_image(source, name=name, max_side=limits.max_side, max_pixels=limits.max_pixels)
    except FileNotFoundError:
        raise UploadError(f"{name} does not exist (was the upload interrupted?)",
                          "Missing (upload them again)") from None
    except ImageTooLarge as err:
        raise UploadError(str(err), "Too large to decode") from None
    except UnreadableImage as err:
        raise UploadError(str(err), "Not readable images") from None


class Refusals:
    """The files an upload could not use, counted by reason with the first few as examples."""

    def __init__(self, examples: int = 3):
        self.examples = examples
        self._reasons: dict[str, list] = {}  # reason -> [count, examples]

    def add(self, reason: str, example: str) -> None:
        entry = self._reasons.setdefault(reason, [0, []])
        entry[0] += 1
        if len(entry[1]) < self.examples:
            entry[1].append(example if len(example) <= 160 else example[:157] + "...")

    def __len__(self) -> int:
        return sum(count for count, _ in self._reasons.values())

    def lines(self) -> list[str]:
        """One line per reason: how many files, and a few of them."""
        out = []
        for reason, (count, examples) in self._reasons.items():
            more = f" and {count - len(examples):,} more" if count > len(examples) else ""
            out.append(f"{reason}: {count:,} ({'; '.join(examples)}{more})")
        return out


def _label(*parts: str) -> str:
    """A file as the user knows it: the uploaded file's own name, then the path inside a zip."""
    label = "/".join(p.strip("/") for p in parts)
    return label if len(label) <= 100 else "..." + label[-97:]


def _unpack(zf: zipfile.ZipFile, member: zipfile.ZipInfo, budget: list[int], limits: UploadLimits) -> bytes:
    """A member's bytes, read in chunks and refused as soon as it passes a limit (``budget``: bytes left)."""
    declared, packed = member.file_size, max(member.compress_size, 1)
    cap = min(limits.member_bytes, budget[0])
    if declared > limits.member_bytes:
        raise UploadError(f"unpacks to {_mb(declared)}, over the {_mb(limits.member_bytes)} a file may have")
    if declared > budget[0]:
        raise UploadError(f"would take the upload past {_mb(limits.upload_bytes)} unpacked")
    if declared > _SMALL_MEMBER and declared > limits.compression_ratio * packed:
        raise UploadError(f"is compressed {declared // packed:,}:1 (a zip bomb's signature; the limit is "
                          f"{limits.compression_ratio}:1)")
    data = bytearray()
    with zf.open(member) as src:
        while chunk := src.read(_CHUNK):
            data += chunk
            if len(data) > cap or (len(data) > _SMALL_MEMBER and len(data) > limits.compression_ratio * packed):
                raise UploadError(f"unpacks to more than its header says ({_mb(declared)})")
    budget[0] -= len(data)
    return bytes(data)


def _zip_images(path: Path, name: str, refusals: Refusals, budget: list[int],
                limits: UploadLimits) -> Iterable[tuple[Image.Image, str]]:
    """The decodable images inside a zip archive, as (image, label); everything else goes to ``refusals``."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        reason = str(err) if isinstance(err, zipfile.BadZipFile) else type(err).__name__  # OSError names the path
        refusals.add("Not valid zip archives (re-create them)", f"{name}: {reason}")
        return
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")
                   and not Path(m.filename).name.startswith(".")]
        if not members:
            refusals.add("Empty zip archives (put images in them)", f"{name} holds no files")
        for member in members:
            label = _label(name, member.filename)
            if Path(member.filename).suffix.lower() not in IMAGE_SUFFIXES:
                refusals.add(f"Not named like images ({', '.join(sorted(IMAGE_SUFFIXES))})", label)
                continue
            try:
                data = _unpack(zf, member, budget, limits)
            except UploadError as err:
                refusals.add("Not unpacked", f"{label} {err}")
                continue
            except (zipfile.BadZipFile, zlib.error, OSError, RuntimeError, EOFError, NotImplementedError) as err:
                # RuntimeError: an encrypted member; BadZipFile: a CRC or header error; zlib.error: corrupt
                # data; NotImplementedError: a compression method zipfile lacks
                refusals.add("Not unpacked", f"{label}: {type(err).__name__ if isinstance(err, OSError) else err}")
                continue
            try:
                yield open_upload(io.BytesIO(data), name=label, limits=limits), label
            except UploadError as err:
                refusals.add(err.reason, str(err))


def _stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).stem)[:60].strip("._")
    return stem or "image"


def import_images(files: Iterable[str | os.PathLike], out_dir: str | os.PathLike, *,
                  limits: UploadLimits = LIMITS, max_images: int | None = None) -> tuple[list[Path], list[str]]:
    """Decode, downscale and store user images (plain files or images inside zip archives) as PNGs.

    Returns (stored paths, one summary line per reason files were skipped). Raises ``UploadError`` when
    nothing usable was given, with the same summary; ``out_dir`` is then left as it was.
    """
    paths = [Path(f) for f in files if f]
    if not paths:
        raise UploadError("no file was uploaded; choose image files or a zip of images")
    max_images = limits.images_per_upload if max_images is None else min(max_images, limits.images_per_upload)
    out = Path(out_dir)
    created = not out.exists()
    stored: list[Path] = []
    refusals = Refusals()
    budget = [limits.upload_bytes]

    def images():
        for path in paths:
            if path.suffix.lower() == ".zip":
                yield from _zip_images(path, path.name, refusals, budget, limits)
                continue
            try:
                yield open_upload(path, limits=limits), path.name
            except UploadError as err:
                refusals.add(err.reason, str(err))

    try:
        for image, label in images():
            if len(stored) >= max_images:
                refusals.add(f"Not read: one upload adds at most {max_images:,} images (upload the rest "
                             f"separately)", f"from {label} on")
                break
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"{uuid.uuid4().hex[:8]}_{_stem(label)}.png"
            image.save(path, format="PNG")
            stored.append(path)
    except BaseException:
        _remove(stored, out if created else None)
        raise
    if stored and refusals:
        log.info("upload: %d image(s) kept, %d file(s) skipped: %s", len(stored), len(refusals),
                 " ".join(refusals.lines())[:300])
    if not stored:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise UploadError("No usable image in the upload. " + ". ".join(refusals.lines()) + ".")
    return stored, refusals.lines()


def _remove(paths: Iterable[str | os.PathLike], folder: Path | None = None) -> None:
    folders = {Path(p).parent for p in paths} | ({folder} if folder else set())
    for path in paths:
        Path(path).unlink(missing_ok=True)
    for f in folders:
        try:
            f.rmdir()
        except OSError:  # not empty (another upload of the session lives there) or already gone
            pass


def _hold_lock(path: Path):
    """An open file holding an exclusive lock on ``path`` (re-made if a concurrent sweep removed it meanwhile)."""
    while True:
        lock = open(path, "a")
        if fcntl is None:
            return lock
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if path.exists() and os.stat(path).st_ino == os.fstat(lock.fileno()).st_ino:
            return lock
        lock.close()


class UploadStore:
    """The stored copies of users' images: one folder per app run, locked while the app runs, with caps per
    session and in total. Opening a store removes the folders of runs that have ended (a crash, a restart)."""

    def __init__(self, root: str | os.PathLike, limits: UploadLimits = LIMITS):
        self.root = Path(root)
        self.limits = limits
        self.root.mkdir(parents=True, exist_ok=True)
        self.swept = self.sweep()
        run = f"run-{uuid.uuid4().hex[:12]}"
        self._lock_file = _hold_lock(self.root / f"{run}.lock")  # held for the life of the store
        self.folder = self.root / run
        self.folder.mkdir()
        self._count_lock = threading.Lock()
        self._reserved = 0

    def sweep(self) -> int:
        """Remove what ended runs left behind (folders and files without a live lock); returns how many."""
        if fcntl is None:
            return 0
        removed = 0
        for entry in sorted(self.root.iterdir()):
            stem = entry.name.removesuffix(".lock")
            if entry.name.endswith(".lock") and (self.root / stem).is_dir():
                continue  # handled with its folder
            lock_path = self.root / f"{stem}.lock"
            with open(lock_path, "a") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a running app holds it
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                elif entry != lock_path:
                    entry.unlink(missing_ok=True)
                lock_path.unlink(missing_ok=True)
                removed += 1
        if removed:
            log.info("removed %d upload folder(s) left by earlier runs under %s", removed, self.root)
        return removed

    def count(self) -> int:
        """Images stored by all sessions of this run."""
        return sum(1 for _ in self.folder.glob("*/*.png"))

    def add(self, files: Iterable[str | os.PathLike], *, held: int = 0) -> tuple[list[Path], list[str]]:
        """Import a session's upload (``held``: images the session already has) into a folder of its own."""
        room = self.limits.images_per_session - held
        if room <= 0:
            raise UploadError(f"you already have {held:,} images, the most one session may add; remove them "
                              f"(\"Remove my images\") to add others")
        with self._count_lock:
            free = self.limits.images_total - self.count() - self._reserved
            if free <= 0:
                raise UploadError(f"the app already holds {self.limits.images_total:,} uploaded images, its limit; "
                                  f"try again later")
            take = min(room, free, self.limits.images_per_upload)
            self._reserved += take
        try:
            return import_images(files, self.folder / uuid.uuid4().hex[:12], limits=self.limits, max_images=take)
        finally:
            with self._count_lock:
                self._reserved -= take

    def remove(self, paths: Iterable[str | os.PathLike]) -> None:
        """Delete a session's stored images and their emptied folders."""
        _remove([p for p in paths if Path(p).is_relative_to(self.folder)])
