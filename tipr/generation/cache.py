"""Disk cache of generated images: root/ab/abcdef....png keyed by (model, prompt, seed, steps, size, ...)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

_PNG_END = b"IEND\xaeB`\x82"  # last bytes of every complete PNG
_HASH_WHOLE_BELOW = 64 * 2**20
_HASH_EDGE = 4 * 2**20
STALE_AFTER_SECONDS = 600.0  # a write takes milliseconds: a temporary file this old belongs to a killed writer


def model_fingerprint(id_or_dir: str | os.PathLike) -> str:
    """A Hub id as given; a local folder as a hash of its files (names, sizes, contents; ends only for big files)."""
    path = Path(id_or_dir)
    if not path.is_dir():
        return str(id_or_dir)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path).as_posix()}\x00{size}\x00".encode())
        with open(file, "rb") as f:
            if size <= _HASH_WHOLE_BELOW:
                digest.update(f.read())
            else:  # multi-GB checkpoints: their first and last megabytes tell versions apart quickly
                digest.update(f.read(_HASH_EDGE))
                f.seek(size - _HASH_EDGE)
                digest.update(f.read())
    return f"{path.name}@{digest.hexdigest()[:16]}"


class GenerationCache:
    """Generated images as PNGs under `root`, sharded by the first two hex digits of their key."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(*, model: str, prompt: str, seed: int, steps: int, size: tuple[int, int], **extra: Any) -> str:
        """sha256 of every setting that changes the image; `extra` takes e.g. guidance_scale, negative_prompt."""
        fields = {"model": model, "prompt": prompt, "seed": int(seed), "steps": int(steps),
                  "size": [int(s) for s in size], **extra}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()

    def path_for(self, key: str) -> Path:
        if len(key) < 3 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"cache key {key!r} is not a hex digest; build it with GenerationCache.key(...)")
        return self.root / key[:2] / f"{key}.png"

    def has(self, key: str) -> bool:
        """Cheap check (file present and ends like a complete PNG) without decoding it."""
        try:
            with open(self.path_for(key), "rb") as f:
                f.seek(-len(_PNG_END), os.SEEK_END)
                return f.read() == _PNG_END
        except OSError:
            return False

    __contains__ = has

    def get(self, key: str) -> Image.Image | None:
        """The cached image, or None when absent or unreadable (a corrupt file is removed so it is regenerated)."""
        path = self.path_for(key)
        try:
            with open(path, "rb") as f:
                f.seek(-len(_PNG_END), os.SEEK_END)
                complete = f.read() == _PNG_END
            if complete:
                with Image.open(path) as image:
                    image.load()
                    return image.convert("RGB")
        except FileNotFoundError:
            return None
        except (OSError, SyntaxError, ValueError):
            pass
        path.unlink(missing_ok=True)
        return None

    def put(self, key: str, image: Image.Image, *, metadata: dict[str, Any] | None = None) -> Path:
        """Write atomically: a temporary file in the same folder, then os.replace."""
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        info = PngImagePlugin.PngInfo()
        for name, value in (metadata or {}).items():
            info.add_text(name, value if isinstance(value, str) else json.dumps(value))
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:8]}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                image.convert("RGB").save(f, format="PNG", pnginfo=info)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def remove_stale_temporaries(self, older_than: float = STALE_AFTER_SECONDS) -> list[Path]:
        """Delete the temporary files of writers killed mid-write (older than `older_than` seconds); returns them.

        Younger ones may belong to a process filling the same cache right now, so they stay.
        """
        now, removed = time.time(), []
        for path in self.root.glob("??/.*.tmp"):
            try:
                if now - path.stat().st_mtime > older_than:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:  # finished or removed by another process meanwhile
                pass
        return removed

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("??/*.png"))
