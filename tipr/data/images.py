"""The one image decoder: dataset images, evaluation galleries and the app's gallery and uploads all pass here.

Trusted images (datasets, a gallery) are decoded whole; untrusted ones (uploads) with ``max_side`` and
``max_pixels``, which bound the work before any pixel is decoded.
"""

from __future__ import annotations

import os
import warnings
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
FORMATS_HINT = "JPEG, PNG, WebP, BMP, GIF or TIFF"


class UnreadableImage(OSError):
    """An image cannot be decoded; the message names it as the caller knows it."""


class ImageTooLarge(UnreadableImage):
    """An image has more pixels to decode than the caller allows."""


def _too_large(name: str, width: int, height: int, limit: int) -> ImageTooLarge:
    return ImageTooLarge(f"{name} is {width}x{height} = {width * height / 1e6:.1f} megapixels to decode, over the "
                         f"limit of {limit / 1e6:.1f}; downscale it (or save it as JPEG, which is decoded at a "
                         f"reduced size)")


def read_image(source: str | os.PathLike | BinaryIO, *, name: str | None = None, max_side: int | None = None,
               max_pixels: int | None = None) -> Image.Image:
    """Decode an image as upright RGB (EXIF orientation applied).

    ``max_side``: the long side is brought to at most this many pixels, JPEGs decoded directly at a reduced
    scale (draft mode) and other formats reduced by whole factors before the final resampling.
    ``max_pixels``: refuse, before decoding, an image with more pixels than this left to decode after draft
    mode (PIL's own decompression-bomb limit applies in any case). Errors name the image ``name`` (default:
    the path), never a temporary path behind it.
    """
    name = name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "image")
    try:
        with warnings.catch_warnings():
            if max_pixels is not None:  # the header check below gives the clearer message
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
        with image:
            if max_side is not None:
                image.draft("RGB", (max_side, max_side))
            if max_pixels is not None and image.width * image.height > max_pixels:
                raise _too_large(name, image.width, image.height, max_pixels)
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            if max_side is not None:
                image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            return image.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"image file {name} does not exist") from None
    except Image.DecompressionBombError:
        raise ImageTooLarge(f"{name} has more pixels than PIL decodes safely ({2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} "
                            f"megapixels); downscale it") from None
    except UnidentifiedImageError:
        raise UnreadableImage(f"{name} is not an image ({FORMATS_HINT}) or its header is damaged") from None
    except UnreadableImage:
        raise
    except Exception as err:  # OSError, SyntaxError, ValueError, struct.error, ...: what damaged bytes raise in PIL
        reason = str(err).replace(str(source), name) if isinstance(source, (str, os.PathLike)) else str(err)
        raise UnreadableImage(f"{name} is a damaged image ({type(err).__name__}: {reason[:200]})") from None
