"""Text-to-image search over the gallery and the user's own images: text only, with GEA's generated image
(TGTE), or with GIF re-ranking of the top candidates; and the rank changes the generated image causes."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from tipr.app import ranks
from tipr.app.encoder import Encoder
from tipr.app.gallery_index import GalleryIndex
from tipr.app.intermediate import Imaginer
from tipr.app.ranks import rank_among
from tipr.data.images import read_image
from tipr.gea.config import GEAConfig

# how a query is searched (not a training method): the names the API and the UI take
QUERY_MODES = {"text": "Text only", "gea": "With GEA's generated image", "gif": "GIF re-ranking"}
MAX_QUERY_CHARS = 1000
MAX_K = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class QueryError(ValueError):
    """The query cannot be searched; the message says what to type instead."""


def clean_query(text: object) -> tuple[str, list[str]]:
    """The query as searched (NFC, control characters and repeated spaces removed, capped in length) and
    notes for the user about what was changed or may go wrong."""
    if not isinstance(text, str):
        raise QueryError(f"the query must be text, got {type(text).__name__}")
    text = " ".join(_CONTROL.sub(" ", unicodedata.normalize("NFC", text)).split())
    if not text:
        raise QueryError("The query is empty: describe the person, e.g. "
                         "\"a woman in a red coat with black trousers carrying a bag\".")
    notes = []
    if len(text) > MAX_QUERY_CHARS:
        notes.append(f"The query is {len(text):,} characters long; only its first {MAX_QUERY_CHARS:,} are used "
                     f"(the text encoder reads about 75 words at most).")
        text = text[:MAX_QUERY_CHARS].rstrip()
    letters = [c for c in text if c.isalpha()]
    if not letters:
        notes.append("The query has no letters; describe clothing, colours and carried items in words.")
    elif not any(unicodedata.name(c, "").startswith("LATIN") for c in letters):
        notes.append("The query has no Latin letters: the model was trained on English captions, "
                     "so the results may not match it.")
    return text, notes


@dataclass(frozen=True)
class UserImages:
    """A session's own images (stored paths) and their normalised features; immutable, so sessions never share."""

    paths: tuple[str, ...] = ()
    features: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def add(self, paths: list[str], features: np.ndarray) -> "UserImages":
        feats = features if self.features is None else np.concatenate([self.features, features])
        return UserImages(self.paths + tuple(str(p) for p in paths), feats.astype(np.float32))


@dataclass(frozen=True)
class Hit:
    rank: int
    row: int  # gallery row, or len(gallery) + i for the session's i-th own image
    score: float
    path: str
    pid: int  # -1: unknown
    own: bool


@dataclass
class SearchResult:
    hits: list[Hit]
    method: str
    generated: Image.Image | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    """Top-k without and with GEA's generated image; ``moves[i]`` is the text-only rank of ``with_[i]`` (None:
    beyond the best ``RANK_WITHIN``)."""

    generated: Image.Image
    without: list[Hit]
    with_: list[Hit]
    moves: list[int | None]
    notes: list[str] = field(default_factory=list)


class Searcher:
    """Ranks the gallery (plus a session's own images) for a text query."""

    def __init__(self, encoder: Encoder, index: GalleryIndex, imaginer: Imaginer | None = None):
        self.encoder, self.index, self.imaginer = encoder, index, imaginer
        gea = encoder.model.gea_config or GEAConfig()
        self.rerank_top_k, self.rerank_weight = gea.rerank_top_k, gea.rerank_weight

    # ------------------------------------------------------------------------------------------ methods
    def unavailable(self, method: str) -> str | None:
        """Why ``method`` cannot run with this model and generator, or None when it can."""
        if method not in QUERY_MODES:
            return f"unknown method {method!r}; choose one of {', '.join(QUERY_MODES)}"
        generator = self.imaginer is not None and self.imaginer.available
        if method == "gea":
            if not self.encoder.has_tgte:
                return "this model has no TGTE head (it was not trained with GEA)"
            if not generator:
                return self.imaginer.error if self.imaginer else "no generator is configured"
        if method == "gif" and not self.encoder.has_gif:
            return "this model has no GIF head (it was not trained with GEA)"
        return None

    # ------------------------------------------------------------------------------------------ ranking
    def _path(self, row: int, user: UserImages | None) -> str:
        n = len(self.index)
        return self.index.source.image_paths[row] if row < n else user.paths[row - n]

    def _hits(self, rows, scores, user: UserImages | None) -> list[Hit]:
        n = len(self.index)
        return [Hit(rank=r + 1, row=int(row), score=float(s), path=self._path(int(row), user),
                    pid=self.index.source.image_pids[row] if row < n else -1, own=row >= n)
                for r, (row, s) in enumerate(zip(rows, scores))]

    def top(self, feat: np.ndarray, k: int, user: UserImages | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the k best gallery and own images for a normalised query feature."""
        scores, rows = self.index.search(feat[None], k)
        found = rows[0] >= 0  # an approximate index may find fewer than k
        scores, rows = scores[0][found], rows[0][found].astype(np.int64)
        if user is not None and len(user):
            own = user.features @ feat
            scores = np.concatenate([scores, own])
            rows = np.concatenate([rows, len(self.index) + np.arange(len(own))])
        order = np.argsort(-scores, kind="stable")[:k]
        return rows[order], scores[order]

    def _gif_rerank(self, tokens, gen, rows: np.ndarray, scores: np.ndarray, user: UserImages | None) -> np.ndarray:
        from tipr.gea.gif import FusionQuery, rerank_top_k

        query = FusionQuery(tokens.tokens, tokens.mask, None if gen is None else gen.tokens,
                            None if gen is None else gen.mask)

        def fetch(positions: torch.Tensor) -> torch.Tensor:
            return self.encoder.image_tokens([self._path(int(rows[i]), user) for i in positions], read_image)

        merged = rerank_top_k(self.encoder.model.gif, query, torch.from_numpy(scores.astype(np.float32))[None], fetch,
                              top_k=self.rerank_top_k, weight=self.rerank_weight)
        return merged[0].numpy()

    def search(self, text: str, *, k: int = 10, method: str = "text", user: UserImages | None = None,
               seed: int = 0, steps: int | None = None) -> SearchResult:
        """The top-k images for ``text``; an unavailable method falls back to the nearest one that runs."""
        text, notes = clean_query(text)
        k = int(k)
        if not 1 <= k <= MAX_K:
            raise QueryError(f"k must be between 1 and {MAX_K}, got {k}")
        why = self.unavailable(method)
        if why is not None:
            if method not in QUERY_MODES:
                raise QueryError(why)
            fallback = "gif" if method == "gea" and self.unavailable("gif") is None else "text"
            notes.append(f"{QUERY_MODES[method]} is not available: {why}. "
                         f"Showing {QUERY_MODES[fallback].lower()} instead.")
            method = fallback
        generated = None
        if method in ("gea", "gif") and self.encoder.has_tgte and self.imaginer is not None and self.imaginer.available:
            try:
                generated = self.imaginer.imagine(text, seed=seed, steps=steps)
            except RuntimeError as err:
                notes.append(f"No generated image: {err}.")
        feat, tokens, gen = self.encoder.query(text, generated)
        if method == "gif":
            # like tipr.evaluate: GIF re-orders the two-tower top rerank_top_k, lifted above the rest
            rows, scores = self.top(feat, max(k, self.rerank_top_k), user)
            scores = self._gif_rerank(tokens, gen, rows, scores, user)
            order = np.argsort(-scores, kind="stable")[:k]
            rows, scores = rows[order], scores[order]
        else:
            rows, scores = self.top(feat, k, user)
        return SearchResult(self._hits(rows, scores, user), method, generated, notes)

    def compare(self, text: str, *, k: int = 10, seed: int = 0, steps: int | None = None,
                user: UserImages | None = None) -> Comparison:
        """Rankings without and with the generated image (TGTE), and where each result ranked before."""
        text, notes = clean_query(text)
        why = self.unavailable("gea")
        if why is not None:
            raise QueryError(f"The GEA comparison is not available: {why}.")
        generated = self.imaginer.imagine(text, seed=seed, steps=steps)
        plain, _, _ = self.encoder.query(text)
        enhanced, _, _ = self.encoder.query(text, generated)
        rows0, scores0 = self.top(plain, k, user)
        rows1, scores1 = self.top(enhanced, k, user)
        rows_b, scores_b = self.top(plain, ranks.RANK_WITHIN, user)  # ranks before, among the best RANK_WITHIN
        moves = [rank_among(scores_b[rows_b != row], float(scores_b[rows_b == row][0]), complete=True)
                 if (rows_b == row).any() else None for row in rows1]
        return Comparison(generated, self._hits(rows0, scores0, user), self._hits(rows1, scores1, user), moves, notes)
