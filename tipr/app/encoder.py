"""The model's two towers on PIL images and strings, without gradients, as numpy features."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from tipr.index.embed import encode_pixels
from tipr.models.backbone import Features


class Encoder:
    """Wraps a loaded ``TIPRModel``; every method is safe to call from several threads at once."""

    def __init__(self, model, *, device: str | torch.device = "cpu", token_cache: int = 256):
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.transform = model.image_transform(train=False)
        self._tokens: OrderedDict[str, torch.Tensor] = OrderedDict()  # image path -> backbone tokens [N, d]
        self._tokens_max = token_cache
        self._lock = threading.Lock()

    @property
    def has_tgte(self) -> bool:
        return self.model.tgte is not None

    @property
    def has_gif(self) -> bool:
        return self.model.gif is not None

    def _pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.transform(im.convert("RGB")) for im in images]).to(self.device)

    def images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """L2-normalised image features [n, d], computed as ``python -m tipr.index`` computes them."""
        return encode_pixels(self.model, self._pixels(images))

    @torch.inference_mode()
    def texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised text features [n, d] (plain text tower, no generated image)."""
        ids = self.model.tokenize(list(texts)).to(self.device)
        return self.model.encode_texts(ids).float().cpu().numpy()

    @torch.inference_mode()
    def query(self, text: str, generated: Image.Image | None = None) -> tuple[np.ndarray, Features, Features | None]:
        """One query's normalised feature [d], its text token features and its generated image's features.

        With a generated image and TGTE, the text tokens first attend to the generated image's tokens (GEA).
        """
        ids = self.model.tokenize([text]).to(self.device)
        gen = None
        if generated is not None:
            gen = self.model.generated_features(self._pixels([generated]))
        feat, tokens = self.model.text_features(ids, gen if self.has_tgte else None)
        return torch.nn.functional.normalize(feat, dim=-1)[0].float().cpu().numpy(), tokens, gen

    @torch.inference_mode()
    def image_tokens(self, paths: Sequence[str], load) -> torch.Tensor:
        """Backbone token features [n, N, d] of images given by path (``load(path) -> PIL``), cached by path."""
        missing = [p for p in dict.fromkeys(paths) if p not in self._tokens]
        if missing:
            _, feats = self.model.image_features(self._pixels([load(p) for p in missing]))
            with self._lock:
                for p, t in zip(missing, feats.tokens):
                    self._tokens[p] = t.clone()
                while len(self._tokens) > self._tokens_max:
                    self._tokens.popitem(last=False)
        with self._lock:
            found = {p: self._tokens.get(p) for p in paths}
        if any(t is None for t in found.values()):  # evicted by a concurrent request in between
            _, feats = self.model.image_features(self._pixels([load(p) for p in paths]))
            return feats.tokens
        return torch.stack([found[p] for p in paths])
