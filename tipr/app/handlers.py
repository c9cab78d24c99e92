"""What each of the app's actions does, as plain functions of the loaded searcher and the session's images.

They know nothing of Gradio: they take values and return values (lists of (image path, caption) for a
gallery, pandas tables, Markdown), and raise the app's user errors; ``tipr.app.ui`` lays them out and wires them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from tipr.app import ranks
from tipr.app.completion import CompletionError, complete_image
from tipr.app.gallery_source import GallerySource
from tipr.app.ranks import rank_text
from tipr.app.search import QUERY_MODES, Hit, Searcher, UserImages
from tipr.app.uploads import LIMITS, UploadLimits, UploadStore, open_upload
from tipr.data.images import read_image
from tipr.ecca.config import ECCAConfig

GalleryItems = list[tuple[str, str]]
Show = Callable[[str], str]  # an image path -> the path the app serves it under

MOVE_COLUMNS = ["rank with", "rank without", "change", "image", "person id", "score with"]
NEIGHBOUR_COLUMNS = ["neighbour", "caption", "person id", "Jaccard distance", "FMC weight"]
NEAREST_COLUMNS = ["caption", "person id", "cosine"]
PHRASE_COLUMNS = ["noun phrase", "cosine"]
MAX_NOTES = 5


def _same(path: str) -> str:
    return path


def empty_table(columns: Sequence[str]) -> pd.DataFrame:
    """A table with its headers and no rows (what a table shows before any action)."""
    return pd.DataFrame({c: [] for c in columns})


def notes_markdown(notes: Sequence[str]) -> str:
    """The first few notes as warning lines, and how many more there were."""
    shown = list(notes[:MAX_NOTES]) + ([f"…and {len(notes) - MAX_NOTES} more"] if len(notes) > MAX_NOTES else [])
    return "\n".join(f"⚠️ {n}" for n in shown)


def hit_caption(hit: Hit, extra: str = "") -> str:
    """``#rank[move] · score · who``: the person id, or the file name where the gallery has no ids."""
    who = "yours" if hit.own else (f"id {hit.pid}" if hit.pid >= 0 else Path(hit.path).name)
    return f"#{hit.rank}{extra} · {hit.score:.2f} · {who}"


def move_label(before: int | None, after: int) -> str:
    if before is None:
        return f" ▲ from >{ranks.RANK_WITHIN}"
    if before == after:
        return " ="
    arrow = "▲" if before > after else "▼"
    return f" {arrow}{abs(before - after)}"


def captionless_choices(source: GallerySource) -> list[tuple[str, str]]:
    """(label, value) of each captionless gallery image, the value being its path relative to the gallery."""
    out = []
    for row in source.captionless:
        rel = source.relative(row)
        who = f" · person {source.image_pids[row]}" if source.image_pids[row] >= 0 else ""
        out.append((f"{rel}{who}", rel))
    return out


def captionless_note(source: GallerySource) -> str:
    """What the Captionless tab can do with this gallery, said before anyone picks anything."""
    if not source.captions:
        return ("This gallery has no captions (a plain folder of images), so there is nothing to complete a "
                "missing caption from: start the app with a gallery that has a `captions.json` or a dataset root "
                "(see docs/app.md).")
    if not source.captionless:
        return ("Every image of this gallery has a caption, so the list is empty; upload an image to see its "
                "text side completed from the gallery's captions.")
    return f"{len(source.captionless)} gallery images have no caption: pick one, or upload an image."


def search(searcher: Searcher, query: str, k: int, method: str, user: UserImages | None = None,
           show: Show = _same) -> tuple[GalleryItems, Image.Image | None, str]:
    """The ranked gallery (served paths and captions), GEA's generated image, and a Markdown summary."""
    result = searcher.search(query, k=int(k), method=method or "text", user=user)
    gallery = [(show(h.path), hit_caption(h)) for h in result.hits]
    own = sum(h.own for h in result.hits)
    head = (f"**{QUERY_MODES[result.method]}**: top {len(result.hits)} of {len(searcher.index)} gallery images"
            + (f" and your own images ({own} in these results)" if user is not None and len(user) else ""))
    return gallery, result.generated, "\n\n".join(x for x in (head, notes_markdown(result.notes)) if x)


def add_images(searcher: Searcher, files: Sequence[str], user: UserImages | None,
               store: UploadStore) -> tuple[UserImages, str]:
    """Decode, store and embed a session's uploaded images (embedded as evaluation reads images); raises
    UploadError when none is usable or the session or the app holds all it may."""
    paths, problems = store.add(list(files or []), held=len(user or ()))
    feats = searcher.encoder.images([read_image(p) for p in paths])
    user = (user or UserImages()).add([str(p) for p in paths], feats)
    msg = f"Added {len(paths)} image(s); your own images: {len(user)}. They are searched with the gallery."
    return user, "\n\n".join(x for x in (msg, notes_markdown(problems)) if x)


def behind_gea(searcher: Searcher, query: str, seed: int, steps: int, k: int, show: Show = _same
               ) -> tuple[Image.Image, GalleryItems, GalleryItems, pd.DataFrame, str]:
    """The generated image, the top-k without and with it, the table of moves and a summary."""
    cmp = searcher.compare(query, k=int(k), seed=int(seed), steps=int(steps), user=None)
    without = [(show(h.path), hit_caption(h)) for h in cmp.without]
    with_ = [(show(h.path), hit_caption(h, move_label(before, h.rank))) for h, before in zip(cmp.with_, cmp.moves)]
    top0 = {h.row for h in cmp.without}
    entered = sum(h.row not in top0 for h in cmp.with_)
    moved = sum(before != h.rank for h, before in zip(cmp.with_, cmp.moves))
    table = pd.DataFrame(dict(zip(MOVE_COLUMNS, [
        [h.rank for h in cmp.with_],
        [b if b is not None else f"> {ranks.RANK_WITHIN}" for b in cmp.moves],
        [move_label(b, h.rank).strip() + (f" (was {rank_text(b)})" if b != h.rank else "")
         for h, b in zip(cmp.with_, cmp.moves)],
        [Path(h.path).name for h in cmp.with_],
        [h.pid for h in cmp.with_],
        [round(h.score, 4) for h in cmp.with_],
    ])))
    summary = (f"The generated image changed {moved} of the top {len(cmp.with_)} positions; "
               f"{entered} image(s) entered the top {len(cmp.with_)}.")
    return cmp.generated, without, with_, table, "\n\n".join(x for x in (summary, notes_markdown(cmp.notes)) if x)


def complete(searcher: Searcher, ecca: ECCAConfig, choice: str | None, upload: str | None,
             limits: UploadLimits = LIMITS
             ) -> tuple[Image.Image, str, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """ECCA's completion of a captionless gallery image (``choice``) or an uploaded one: the image, a summary,
    HSNG's neighbours with their FMC weights, the weights as a chart table, and the nearest captions and phrases."""
    index = searcher.index
    src = index.source
    if upload:
        image = open_upload(upload, limits=limits)
        row, feature, label = None, searcher.encoder.images([image])[0], f"your image {Path(upload).name}"
    elif choice:
        rows = {src.relative(i): i for i in src.captionless}  # the choices offered
        if choice not in rows:
            raise CompletionError(f"{choice!r} is not an image of this gallery; pick one from the list")
        row = rows[choice]
        image = read_image(src.image_paths[row])
        feature, label = index.vectors([row])[0], choice
    else:
        raise CompletionError("Pick a captionless gallery image from the list or upload an image.")
    result = complete_image(index, np.asarray(feature), row=row, k=ecca.k, k_prime=ecca.k_prime,
                            probe_feature=lambda text: searcher.encoder.texts([text])[0])
    neighbours = pd.DataFrame(dict(zip(NEIGHBOUR_COLUMNS, [
        [f"#{i + 1}" for i in range(len(result.neighbours))],
        [src.captions[j] for j in result.neighbours],
        [src.caption_pids[j] for j in result.neighbours],
        [round(d, 3) for d in result.distances],
        [round(w, 4) for w in result.weights],
    ])))
    chart = pd.DataFrame({"neighbour": neighbours[NEIGHBOUR_COLUMNS[0]], "weight": neighbours[NEIGHBOUR_COLUMNS[4]]})
    nearest = pd.DataFrame(dict(zip(NEAREST_COLUMNS, [
        [src.captions[j] for j, _ in result.nearest_captions],
        [src.caption_pids[j] for j, _ in result.nearest_captions],
        [round(s, 4) for _, s in result.nearest_captions],
    ])))
    phrases = pd.DataFrame(dict(zip(PHRASE_COLUMNS, [[p for p, _ in result.nearest_phrases],
                                                     [round(s, 4) for _, s in result.nearest_phrases]])))
    before, after = result.rank_without, result.rank_with
    far = 1 << 62  # beyond RANK_WITHIN
    b, a = (far if r is None else r for r in (before, after))
    arrow = "▲" if a < b else ("▼" if a > b else "=")
    summary = (f"**{label}** — its {result.probe_kind}: “{result.probe}”\n\n"
               f"Rank for that caption among {result.gallery_size:,} images: **{rank_text(before)}** with the image "
               f"feature alone → **{rank_text(after)}** {arrow} with the completed text feature "
               f"(image + completed text, normalised).")
    return image, summary, neighbours, chart, nearest, phrases
