"""GEA's intermediate image for a query: the text-to-image generator, loaded on first use, and a disk cache."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from PIL import Image

log = logging.getLogger("tipr.app")
MAX_STEPS = 100


class Imaginer:
    """Turns a query into the generated pedestrian image GEA conditions on (same seed rule as training)."""

    def __init__(self, spec: str | os.PathLike | None, cache_dir: str | os.PathLike, *, trained_steps: int = 0):
        self.spec = str(spec) if spec else None
        self.trained_steps = int(trained_steps)  # the model's GEAConfig.generation_steps (0: generator default)
        self.cache_dir = Path(cache_dir) / "generated"
        self.error: str | None = None if self.spec else "no generator was configured (--generator none)"
        self._generator = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()  # a diffusers scheduler keeps per-call state: one generation at a time

    @property
    def available(self) -> bool:
        return self.error is None

    def load(self):
        """The loaded ``tipr.generation.Generator``; raises RuntimeError with the reason when it cannot load."""
        with self._load_lock:
            if self._generator is None and self.error is None:
                try:
                    from tipr.generation import load_generator

                    self._generator = load_generator(self.spec)
                    log.info("loaded the generator %s", self._generator)
                except Exception as err:  # any failure leaves the app serving text-only search
                    self.error = f"the generator {self.spec!r} could not be loaded: {err}"
                    log.warning(self.error)
            if self.error is not None:
                raise RuntimeError(self.error)
            return self._generator

    def imagine(self, text: str, *, seed: int = 0, steps: int | None = None) -> Image.Image:
        """The generated image for ``text`` (seed: ``caption_seed(text, seed)``), from the cache if made before."""
        from tipr.generation import OUTPUT_SIZE, GenerationCache

        generator = self.load()
        if steps and not 1 <= int(steps) <= MAX_STEPS:
            raise ValueError(f"steps must be between 1 and {MAX_STEPS}, got {steps}")
        steps = int(steps) if steps else self.trained_steps  # 0/None: the images the model was trained on
        if not 0 <= int(seed) < 2**31:
            raise ValueError(f"seed must be between 0 and {2**31 - 1}, got {seed}")
        cache = GenerationCache(self.cache_dir)
        with self._run_lock:
            return generator.generate_cached([text], cache, seed_base=int(seed), steps=steps or None,
                                             size=OUTPUT_SIZE, batch_size=1, progress=False)[0]
