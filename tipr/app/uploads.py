"""Images from users: safe decoding (decompression bombs, huge photos), downscaling, zip archives."""

from __future__ import annotations

import os
import re
import uuid
import zipfile
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
MAX_SIDE = 512  # pedestrian crops: nothing is gained above this, and every pixel costs memory and time
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485  # PIL's own decompression-bomb threshold
MAX_IMAGES_PER_UPLOAD = 1000
MAX_ZIP_BYTES = 1 << 30  # uncompressed total an archive may unpack to


class UploadError(ValueError):
    """A user's file cannot be used; the message says which file and what to do."""


def open_image(path: str | os.PathLike, *, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode an image file as RGB with its long side at most ``max_side``, refusing decompression bombs.

    The header is read first: an image over ``max_pixels`` is refused before any pixel is decoded, and
    JPEGs are decoded directly at a reduced scale (``draft``), so a 50-megapixel photo costs little.
    """
    name = Path(path).name
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise UploadError(f"{name} is {width}x{height} = {width * height / 1e6:.0f} megapixels, over the "
                                  f"{max_pixels / 1e6:.0f}-megapixel limit; downscale it before uploading")
            image.draft("RGB", (max_side, max_side))
            image = ImageOps.exif_transpose(image)
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            return image.convert("RGB")
    except Image.DecompressionBombError as err:
        raise UploadError(f"{name} is too large to decode safely ({err}); downscale it before uploading") from None
    except FileNotFoundError:
        raise UploadError(f"{name} does not exist (was the upload interrupted?); upload it again") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        if isinstance(err, UploadError):
            raise
        raise UploadError(f"{name} is not an image PIL can read ({type(err).__name__}: {err}); "
                          f"upload a JPEG, PNG, WebP or BMP file") from None


def _safe_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).stem)[:60].strip("._")
    return stem or "image"


def _zip_members(archive: Path) -> Iterable[zipfile.ZipInfo]:
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
    except zipfile.BadZipFile as err:
        raise UploadError(f"{archive.name} is not a valid zip archive ({err}); re-create it") from None
    files = [m for m in members if not m.is_dir() and not m.filename.startswith("__MACOSX/")
             and not Path(m.filename).name.startswith(".")]
    if not files:
        raise UploadError(f"{archive.name} is empty: it holds no files; put some images in it")
    if sum(m.file_size for m in files) > MAX_ZIP_BYTES:
        raise UploadError(f"{archive.name} would unpack to more than {MAX_ZIP_BYTES >> 20} MB; upload fewer images")
    return files


def import_images(files: Iterable[str | os.PathLike], out_dir: str | os.PathLike, *,
                  max_side: int = MAX_SIDE) -> tuple[list[Path], list[str]]:
    """Decode, downscale and store user images (plain files or images inside zip archives) as PNGs.

    Returns (stored paths, one problem message per file that was skipped). Raises ``UploadError`` when
    nothing usable was given, naming what was wrong with each file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stored: list[Path] = []
    problems: list[str] = []

    def store(image: Image.Image, name: str) -> None:
        path = out / f"{uuid.uuid4().hex[:8]}_{_safe_stem(name)}.png"
        image.save(path, format="PNG")
        stored.append(path)

    paths = [Path(f) for f in files if f]
    if not paths:
        raise UploadError("no file was uploaded; choose image files or a zip of images")
    for path in paths:
        if len(stored) >= MAX_IMAGES_PER_UPLOAD:
            problems.append(f"stopped after {MAX_IMAGES_PER_UPLOAD} images; upload the rest separately")
            break
        if path.suffix.lower() == ".zip":
            try:
                members = _zip_members(path)
            except UploadError as err:
                problems.append(str(err))
                continue
            with zipfile.ZipFile(path) as zf:
                for member in members:
                    label = f"{path.name}:{member.filename}"
                    if Path(member.filename).suffix.lower() not in IMAGE_SUFFIXES:
                        problems.append(f"{label} skipped: not an image file name "
                                        f"({', '.join(sorted(IMAGE_SUFFIXES))})")
                        continue
                    if len(stored) >= MAX_IMAGES_PER_UPLOAD:
                        problems.append(f"stopped after {MAX_IMAGES_PER_UPLOAD} images; upload the rest separately")
                        break
                    # members are decoded from memory, never written under their own names (no zip-slip)
                    tmp = out / f".unzip-{uuid.uuid4().hex}"
                    try:
                        with zf.open(member) as src, open(tmp, "wb") as dst:
                            dst.write(src.read(MAX_ZIP_BYTES))
                        store(open_image(tmp, max_side=max_side), member.filename)
                    except UploadError as err:
                        problems.append(f"{label}: {err}")
                    except (zipfile.BadZipFile, OSError, RuntimeError) as err:  # RuntimeError: encrypted member
                        problems.append(f"{label} could not be unpacked ({err})")
                    finally:
                        tmp.unlink(missing_ok=True)
            continue
        try:
            store(open_image(path, max_side=max_side), path.name)
        except UploadError as err:
            problems.append(str(err))
    if not stored:
        raise UploadError("no usable image in the upload: " + "; ".join(problems))
    return stored, problems
