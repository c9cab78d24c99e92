"""Free-form demo queries with hand-labelled attributes, and how often the top results show what a query names.

A queries file is ``{"format": "tipr-demo-queries/1", "queries": [{"query": "guy w/ blue jeans",
"attributes": {"gender": "male", "lower_colour": "blue", "lower_type": "jeans"}}, ...]}``: keys and values are
those of SynthPEDES's ``attributes`` records. An image *shows* an attribute when its recorded value equals the
label and the attribute's group is in the image's ``visible`` list (glasses seen from behind do not count).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tipr.index.folder import read_format_json

QUERIES_FORMAT = "tipr-demo-queries/1"
# attribute -> the group SynthPEDES's ``visible`` list names for it
ATTRIBUTE_GROUPS = {
    "gender": "gender", "build": "build", "hair_style": "hair", "hair_colour": "hair",
    "upper_type": "upper", "upper_colour": "upper", "upper_pattern": "pattern", "upper_pattern_colour": "pattern",
    "lower_type": "lower", "lower_colour": "lower", "shoes_colour": "shoes", "bag_type": "bag", "bag_colour": "bag",
    "headwear": "headwear", "headwear_colour": "headwear", "glasses": "glasses", "carry": "carry",
}


class QueriesError(ValueError):
    """The queries file cannot be used; the message names the entry and what to fix."""


@dataclass(frozen=True)
class DemoQuery:
    query: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class AttributeHits:
    """One query attribute: the share of the top results showing it and of the whole gallery (chance)."""

    query: int
    key: str
    value: Any
    top_share: float
    chance: float


@dataclass(frozen=True)
class QueryScore:
    query: DemoQuery
    matches: int  # gallery images showing every attribute the query names
    attributes: list[AttributeHits]
    top_all: float  # share of the top results showing every attribute

    @property
    def top_share(self) -> float:
        return sum(a.top_share for a in self.attributes) / len(self.attributes)

    @property
    def chance(self) -> float:
        return sum(a.chance for a in self.attributes) / len(self.attributes)


def shows(image: Mapping[str, Any], key: str, value: Any) -> bool:
    """Whether an image with these true attributes shows ``key == value`` (recorded and visible)."""
    visible = image.get("visible")
    return image.get(key) == value and (visible is None or ATTRIBUTE_GROUPS[key] in visible)


def read_queries(path: str | os.PathLike) -> list[DemoQuery]:
    """The queries of a ``tipr-demo-queries/1`` file, checked: every query names known attributes."""
    path = Path(path)
    data = read_format_json(path, QUERIES_FORMAT, "queries", what="a demo queries file", error=QueriesError)
    out = []
    for i, item in enumerate(data["queries"]):
        text = item.get("query") if isinstance(item, dict) else None
        attrs = item.get("attributes") if isinstance(item, dict) else None
        if not isinstance(text, str) or not text.strip() or not isinstance(attrs, dict) or not attrs:
            raise QueriesError(f"{path}: entry {i} needs a \"query\" string and a non-empty \"attributes\" object")
        unknown = sorted(set(attrs) - set(ATTRIBUTE_GROUPS))
        if unknown:
            raise QueriesError(f"{path}: entry {i} ({text!r}) names unknown attributes {unknown}; "
                               f"use SynthPEDES's keys: {', '.join(ATTRIBUTE_GROUPS)}")
        out.append(DemoQuery(text, dict(attrs)))
    if not out:
        raise QueriesError(f"{path} holds no queries")
    return out


def score_queries(queries: Sequence[DemoQuery], top_rows: Sequence[Sequence[int]],
                  images: Sequence[Mapping[str, Any]]) -> list[QueryScore]:
    """Each query's attribute hits among its ranked ``top_rows`` (gallery rows, best first) and the chance rate,
    the share of all ``images`` showing the attribute (what a random top-k scores on average)."""
    if len(top_rows) != len(queries):
        raise ValueError(f"{len(queries)} queries but {len(top_rows)} rankings")
    scores = []
    for q, (query, rows) in enumerate(zip(queries, top_rows)):
        if not rows:
            raise ValueError(f"query {query.query!r} has an empty ranking")
        hits = [AttributeHits(q, key, value, sum(shows(images[r], key, value) for r in rows) / len(rows),
                              sum(shows(a, key, value) for a in images) / len(images))
                for key, value in query.attributes.items()]
        every = [all(shows(a, k, v) for k, v in query.attributes.items()) for a in images]
        scores.append(QueryScore(query, sum(every), hits, sum(every[r] for r in rows) / len(rows)))
    return scores


def micro_average(scores: Sequence[QueryScore]) -> tuple[float, float]:
    """(top share, chance) over every query-attribute pair."""
    pairs = [a for s in scores for a in s.attributes]
    return sum(a.top_share for a in pairs) / len(pairs), sum(a.chance for a in pairs) / len(pairs)
