"""The demo's figures on a gallery whose images record their true attributes (benchmarks/demo_check.py).

Three measures, each beside its reference: the model's R1/R5/mAP/mINP on the gallery's own captions (captioned
and held-out, every gallery image a candidate) beside the attribute oracle's on the same captions; the share of
the top-k results of free-form queries showing each attribute a query names, beside chance; and how alike the
neighbours the Captionless tab shows (HSNG's captions, through their images) are to the captionless image,
beside all of the gallery's captions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tipr.app.completion import complete_image
from tipr.app.demo_queries import DemoQuery, QueryScore, micro_average, score_queries
from tipr.app.gallery_index import GalleryIndex
from tipr.app.gallery_source import GallerySource
from tipr.app.search import Searcher
from tipr.attribute_oracle import LOOKS, agreement, oracle_scores
from tipr.ecca.config import ECCAConfig
from tipr.metrics import rank_metrics

METRICS = ("R1", "R5", "mAP", "mINP")
TARGET_RATIO, TARGET_HITS = 2 / 3, 0.7


class DemoCheckError(ValueError):
    """The gallery cannot be scored; the message says what it lacks and how to rebuild it."""


@dataclass(frozen=True)
class CaptionRanking:
    model: dict[str, float]
    oracle: dict[str, float]
    queries: int
    held_out: int

    def ratio(self, metric: str) -> float:
        return self.model[metric] / self.oracle[metric] if self.oracle[metric] else float("nan")


@dataclass(frozen=True)
class NeighbourLikeness:
    images: int  # captionless images completed
    neighbours: int  # neighbours per image (k')
    agreement: float  # mean share of LOOKS equal between a neighbour's image and the captionless image
    same_person: float
    chance_agreement: float  # the same over every gallery caption
    chance_same_person: float


def load_demo(model: str, gallery: str, *, cache_dir: str, device: str = "cpu") -> tuple[Searcher, ECCAConfig]:
    """The model and gallery index as the app loads them (a saved index when it still matches), and the model's
    ECCA settings (HSNG's k and k')."""
    from tipr.app.encoder import Encoder
    from tipr.app.gallery import load_or_build
    from tipr.generation.cache import model_fingerprint
    from tipr.models.tipr_model import load_model

    loaded = load_model(model, device=device)
    encoder = Encoder(loaded, device=device)
    index = load_or_build(gallery, model_fingerprint=model_fingerprint(model), embed_images=encoder.images,
                          embed_texts=encoder.texts, cache_dir=cache_dir)
    return Searcher(encoder, index), loaded.ecca_config or ECCAConfig()


def image_attributes(source: GallerySource) -> list[dict[str, Any]]:
    """Every gallery image's true attributes, in row order; DemoCheckError when some are missing."""
    missing = [source.relative(i) for i in range(len(source.image_paths)) if i not in source.attributes]
    if missing:
        raise DemoCheckError(f"the gallery {source.root} records no true attributes for {len(missing)} of its "
                             f"{len(source.image_paths)} images (e.g. {', '.join(missing[:3])}); the demo's figures "
                             f"need a SynthPEDES gallery whose captions.json has them: python assets/build.py "
                             f"--stages gallery,index")
    return [source.attributes[i] for i in range(len(source.image_paths))]


def caption_queries(source: GallerySource) -> tuple[list[str], list[int], int]:
    """The gallery's captions and then its held-out ones, their person ids, and how many are held out."""
    held = [(c, source.image_pids[row]) for row, captions in sorted(source.held_out.items()) for c in captions]
    return source.captions + [c for c, _ in held], source.caption_pids + [p for _, p in held], len(held)


def rank_captions(searcher: Searcher, images: Sequence[Mapping[str, Any]], *, seed: int = 0) -> CaptionRanking:
    """The model's and the oracle's rank metrics for the gallery's own captions over the whole gallery."""
    source = searcher.index.source
    captions, pids, held = caption_queries(source)
    if not captions:
        raise DemoCheckError(f"the gallery {source.root} has no captions to rank with; use one with a captions.json")
    features = searcher.encoder.texts(captions)
    gallery = np.asarray(searcher.index.image_features, dtype=np.float32)
    query_pids, image_pids = torch.tensor(pids), torch.tensor(source.image_pids)
    model = rank_metrics(torch.from_numpy(features @ gallery.T), query_pids, image_pids)
    oracle = rank_metrics(oracle_scores(captions, list(images), seed=seed), query_pids, image_pids)
    return CaptionRanking({m: model[m] for m in METRICS}, {m: oracle[m] for m in METRICS}, len(captions), held)


def rank_queries(searcher: Searcher, queries: Sequence[DemoQuery], images: Sequence[Mapping[str, Any]], *,
                 k: int = 5) -> list[QueryScore]:
    """The free-form queries searched as the app's Search tab does (text only), scored on their top k."""
    tops = [[h.row for h in searcher.search(q.query, k=k, method="text").hits] for q in queries]
    return score_queries(queries, tops, images)


def neighbour_likeness(index: GalleryIndex, images: Sequence[Mapping[str, Any]],
                       ecca: ECCAConfig) -> NeighbourLikeness:
    """How alike to each captionless image are the captions' images HSNG picks for it (the Captionless tab's
    neighbours), against every caption of the gallery."""
    source = index.source
    rows = source.captionless
    if not rows or not source.captions:
        raise DemoCheckError(f"the gallery {source.root} has no captionless images (or no captions) to complete")
    if any(i < 0 for i in source.caption_images):
        raise DemoCheckError(f"the gallery {source.root} does not say which image each caption describes")
    agree, same, base_agree, base_same, k_prime = [], [], [], [], 0
    for row in rows:
        done = complete_image(index, index.vectors([row])[0], row=row, k=ecca.k, k_prime=ecca.k_prime)
        k_prime = max(k_prime, len(done.neighbours))
        agree += [agreement(images[row], images[source.caption_images[j]]) for j in done.neighbours]
        same += [source.caption_pids[j] == source.image_pids[row] for j in done.neighbours]
        base_agree.append(np.mean([agreement(images[row], images[i]) for i in source.caption_images]))
        base_same.append(np.mean([p == source.image_pids[row] for p in source.caption_pids]))
    return NeighbourLikeness(len(rows), k_prime, float(np.mean(agree)), float(np.mean(same)),
                             float(np.mean(base_agree)), float(np.mean(base_same)))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _mark(ok: bool) -> str:
    return "yes" if ok else "no"


def report(ranking: CaptionRanking, scores: Sequence[QueryScore], likeness: NeighbourLikeness, *, k: int = 5,
           header: str = "") -> str:
    """The three measures as Markdown, each beside its reference and target."""
    lines = [header, "## Ranking the gallery's own captions", "",
             f"{ranking.queries} captions ({ranking.held_out} of them held out, of the captionless images) rank "
             f"every gallery image. Target: the model's R1 and mAP at least two thirds of the oracle's.", "",
             "| | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS),
             "| model | " + " | ".join(f"{ranking.model[m]:.2f}" for m in METRICS) + " |",
             "| attribute oracle | " + " | ".join(f"{ranking.oracle[m]:.2f}" for m in METRICS) + " |",
             "| model / oracle | " + " | ".join(f"{ranking.ratio(m):.2f}" for m in METRICS) + " |", "",
             f"Target met: R1 {_mark(ranking.ratio('R1') >= TARGET_RATIO)}, "
             f"mAP {_mark(ranking.ratio('mAP') >= TARGET_RATIO)}.", ""]
    top, chance = micro_average(scores)
    lines += [f"## Free-form queries: attributes shown in the top {k}", "",
              f"{len(scores)} queries naming {sum(len(s.attributes) for s in scores)} attributes in all. An image "
              f"shows an attribute when its true value equals the label and the attribute is visible in it; chance "
              f"is the share of gallery images showing it (what a random top {k} scores). Target: at least "
              f"{TARGET_HITS:.0%} over all query-attribute pairs. The last column, the share of the top {k} showing "
              f"every attribute of the query, is at most (images showing all) / {k}.", "",
              f"**All pairs: {_pct(top)} of the top-{k} results show the attribute (chance {_pct(chance)}); "
              f"target met: {_mark(top >= TARGET_HITS)}.**", "",
              f"| query | images showing all | top {k}: attributes shown | chance | top {k}: showing all |",
              "|---|---:|---:|---:|---:|"]
    for s in scores:
        lines.append(f"| {s.query.query} | {s.matches} | {_pct(s.top_share)} | {_pct(s.chance)} | {_pct(s.top_all)} |")
    unseen = [f"“{scores[a.query].query.query}” ({a.key} = {a.value})" for s in scores for a in s.attributes
              if a.chance == 0]
    if unseen:
        lines += ["", "No gallery image shows: " + "; ".join(unseen) + " (scored 0, chance 0)."]
    lines += ["", "## Captionless tab: the neighbours HSNG picks", "",
              f"For each of the {likeness.images} captionless images, the {likeness.neighbours} gallery captions HSNG "
              f"picks (the tab's neighbours), through the images they describe: the share of {len(LOOKS)} looks "
              f"({', '.join(LOOKS)}) equal to the captionless image's, and the share that are the same person; "
              f"the reference is every gallery caption.", "",
              "| | attributes agreeing | same person |", "|---|---:|---:|",
              f"| HSNG neighbours | {_pct(likeness.agreement)} | {_pct(likeness.same_person)} |",
              f"| any gallery caption | {_pct(likeness.chance_agreement)} | {_pct(likeness.chance_same_person)} |", ""]
    return "\n".join(lines)
