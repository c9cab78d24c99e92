"""Loads the model, the gallery index and the generator in a background thread, so the page is up at once;
every action waits for it and reports a load failure as a clear message while the app keeps serving."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger("tipr.app")


class BackendError(RuntimeError):
    """The model or gallery could not be loaded; the message says which and how to fix it."""


class Backend:
    def __init__(self, config, *, start: bool = True):
        self.config = config
        self.searcher = None
        self.ecca = None  # the model's ECCA settings (HSNG's k and k'), the defaults for a model without ECCA
        self.error: str | None = None
        self.seconds: float | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._load, name="tipr-app-loader", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        if not self._thread.is_alive() and not self.ready:
            self._thread.start()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def _load(self) -> None:
        start = time.perf_counter()
        step = "the model"
        try:
            import torch

            from tipr.app.encoder import Encoder
            from tipr.app.gallery import load_or_build
            from tipr.app.intermediate import Imaginer
            from tipr.app.search import Searcher
            from tipr.ecca.config import ECCAConfig
            from tipr.generation.cache import model_fingerprint
            from tipr.models.tipr_model import load_model

            cfg = self.config
            device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
            model = load_model(cfg.model, device=device)
            self.ecca = model.ecca_config or ECCAConfig()
            encoder = Encoder(model, device=device)
            step = "the gallery"
            index = load_or_build(cfg.gallery, model_fingerprint=model_fingerprint(cfg.model),
                                  embed_images=encoder.images, embed_texts=encoder.texts, cache_dir=cfg.cache_dir)
            trained_steps = model.gea_config.generation_steps if model.gea_config else 0
            imaginer = Imaginer(cfg.generator, cfg.cache_dir, trained_steps=trained_steps) if cfg.generator else None
            self.searcher = Searcher(encoder, index, imaginer)
            self.seconds = time.perf_counter() - start
            log.info("ready in %.1f s: %d gallery images, %d captions", self.seconds, len(index),
                     len(index.source.captions))
        except Exception as err:  # shown in the page; the server keeps running
            what = f"--model {self.config.model}" if step == "the model" else f"--gallery {self.config.gallery}"
            self.error = f"Could not load {step} ({what}): {err}"
            log.error(self.error, exc_info=not isinstance(err, (FileNotFoundError, ValueError, ConnectionError)))
        finally:
            self._ready.set()
        if self.searcher is not None and self.searcher.imaginer is not None:
            try:  # warm the generator up now rather than on the first GEA query
                self.searcher.imaginer.load()
            except RuntimeError:
                pass

    def wait(self, timeout: float | None = 300):
        """The ready ``Searcher``; raises BackendError while loading failed or took longer than ``timeout``."""
        if not self._ready.wait(timeout):
            raise BackendError("The model and gallery are still loading; try again in a moment.")
        if self.error is not None:
            raise BackendError(self.error)
        return self.searcher

    def status_markdown(self) -> str:
        if not self.ready:
            return "⏳ Loading the model and embedding the gallery…"
        if self.error is not None:
            return f"⚠️ **{self.error}**"
        s = self.searcher
        src = s.index.source
        gen = ("generator " + (f"`{shown_spec(s.imaginer.spec)}`" if s.imaginer.available
                               else f"unavailable ({s.imaginer.error})")) if s.imaginer else "no generator"
        return (f"Model `{shown_spec(self.config.model)}` ({s.encoder.model.method}) · gallery "
                f"`{shown_spec(self.config.gallery)}`: {len(s.index)} images, {len(src.captions)} captions, "
                f"{len(src.captionless)} captionless · {gen}")


def shown_spec(spec: str | os.PathLike) -> str:
    """A model, gallery or generator as the status line names it: a path relative to the working folder when
    it lies inside, else as given (a Hub id, an absolute path)."""
    path = Path(str(spec))
    if path.exists() and path.resolve().is_relative_to(Path.cwd()):
        return os.path.relpath(path.resolve())
    return str(spec)
