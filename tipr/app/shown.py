"""The one folder the app serves files from: a link (or copy) of each image it has shown, and nothing else.

Serving the gallery folder itself would also serve its ``captions.json`` (the held-out captions included), its
index and anything else placed there. Gradio serves this folder as static files, so a shown image is neither
hashed nor copied again on every search.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid
from pathlib import Path


class ShownImages:
    """Maps an image path to its served copy under ``root`` (a hard link when the file system allows)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._served: dict[str, str] = {}
        self._lock = threading.Lock()

    def _target(self, source: Path) -> Path:
        st = source.stat()
        key = hashlib.sha256(f"{source}\x00{st.st_size}\x00{st.st_mtime_ns}".encode()).hexdigest()[:20]
        return self.root / key[:2] / key / source.name

    def __call__(self, path: str | os.PathLike) -> str:
        """The served path of the image at ``path``, linked or copied there on first use."""
        source = Path(path).resolve()
        served = self._served.get(str(source))
        if served is not None and os.path.exists(served):
            return served
        target = self._target(source)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{uuid.uuid4().hex}.tmp")
            try:
                os.link(source, tmp)
            except OSError:  # another file system, or links not allowed
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        with self._lock:
            self._served[str(source)] = str(target)
        return str(target)

    def forget(self, paths) -> None:
        """Stop serving these images (a session removed its own images)."""
        for path in paths:
            source = Path(path).resolve()
            with self._lock:
                served = self._served.pop(str(source), None)
            if served is not None:
                Path(served).unlink(missing_ok=True)
                for folder in (Path(served).parent, Path(served).parent.parent):
                    try:
                        folder.rmdir()
                    except OSError:
                        break
