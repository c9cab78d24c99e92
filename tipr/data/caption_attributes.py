"""What a caption claims about a person, read with SynthPEDES's caption vocabulary: {attribute: value}.

Words are matched longest first (so "dark blue" is a colour and "dark" alone before "hair" a hair colour); a
colour binds to the garment noun it stands before ("a red coat and black jeans": upper red, lower black), a
second colour joined by "and" before a striped or checked garment is the pattern's colour, and "with stripes" /
"with a logo" after a top is its pattern. Keys and values are those of SynthPEDES's ``attributes`` records
(tipr.data.synthetic), so a claim can be checked against an image's true attributes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from tipr.data.synthetic_captions import (BAG_WORDS, BUILD_WORDS, CARRY_WORDS, COLOUR_WORDS, GENDER_WORDS,
                                          GLASSES_WORDS, HAIR_COLOUR_WORDS, HAIR_STYLE_WORDS, HEADWEAR_WORDS,
                                          LOWER_WORDS, PATTERN_WORDS, PRONOUNS, SHOE_WORDS, UPPER_WORDS)

# a garment noun -> (its type key or None, its colour key)
_NOUNS = {"upper": ("upper_type", "upper_colour"), "lower": ("lower_type", "lower_colour"),
          "shoes": (None, "shoes_colour"), "headwear": ("headwear", "headwear_colour"),
          "bag": ("bag_type", "bag_colour"), "hair": (None, "hair_colour")}


@lru_cache(maxsize=1)
def _lexicon() -> dict[tuple[str, ...], tuple[str, Any]]:
    """Word sequence -> (kind, value); kinds: noun:<group>, colour, pattern, style, gender, build, glasses, carry."""
    lex: dict[tuple[str, ...], tuple[str, Any]] = {}

    def add(table: Mapping[str, Any], kind: str) -> None:
        for value, words in table.items():
            for phrase in words:
                lex.setdefault(tuple(_words(phrase)), (kind, value))

    add(UPPER_WORDS, "noun:upper")
    add(LOWER_WORDS, "noun:lower")
    add({"shoes": SHOE_WORDS}, "noun:shoes")
    add(HEADWEAR_WORDS, "noun:headwear")
    add(BAG_WORDS, "noun:bag")
    add({"hair": ("hair",)}, "noun:hair")
    add(PATTERN_WORDS, "pattern")
    add({k: v for k, v in HAIR_STYLE_WORDS.items() if k in ("ponytail", "bun")}, "style")
    add(GENDER_WORDS, "gender")
    add(PRONOUNS, "gender")
    add({k: v for k, v in BUILD_WORDS.items() if v}, "build")
    add({True: GLASSES_WORDS}, "glasses")
    add(CARRY_WORDS, "carry")
    for value, words in COLOUR_WORDS.items():  # colours: the value is the raw phrase, bound to a noun later
        for phrase in words:
            lex.setdefault(tuple(_words(phrase)), ("colour", phrase))
    for words in HAIR_COLOUR_WORDS.values():
        for phrase in words:
            lex.setdefault(tuple(_words(phrase)), ("colour", phrase))
    for style in ("short", "long", "shoulder-length", "medium-length"):
        lex.setdefault((style,), ("length", style))
    return lex


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+(?:-[a-z]+)*|[,.;]", text.lower())


def _tokens(caption: str) -> list[tuple[str, Any, str]]:
    """(kind, value, text) items, longest lexicon match first; other words are kind "word"."""
    lex, words = _lexicon(), _words(caption)
    longest = max(len(k) for k in lex)
    out, i = [], 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            hit = lex.get(tuple(words[i:i + n]))
            if hit is not None:
                out.append((*hit, " ".join(words[i:i + n])))
                i += n
                break
        else:
            out.append(("word", words[i], words[i]))
            i += 1
    return out


def _colour_value(phrase: str, group: str) -> str | None:
    table = HAIR_COLOUR_WORDS if group == "hair" else COLOUR_WORDS
    return next((value for value, words in table.items() if phrase in words), None)


def caption_attributes(caption: str) -> dict[str, Any]:
    """The attribute values `caption` names, e.g. {"gender": "female", "upper_type": "coat", "upper_colour": "red"}."""
    items = _tokens(caption)
    claims: dict[str, Any] = {}
    for pos, (kind, value, _) in enumerate(items):
        if kind in ("gender", "build", "carry"):
            claims.setdefault(kind, value)
        elif kind == "glasses":
            claims["glasses"] = True
        elif kind == "style":
            claims.setdefault("hair_style", value)
        elif kind.startswith("noun:"):
            group = kind.split(":")[1]
            type_key, colour_key = _NOUNS[group]
            if type_key is not None:
                claims.setdefault(type_key, value)
            modifiers = []  # the words before the noun, back to the start of its phrase ("red and white striped")
            j = pos - 1
            while j >= 0 and (items[j][0] in ("colour", "pattern", "length") or (
                    items[j][2] == "and" and j > 0 and items[j - 1][0] == "colour" and modifiers)):
                modifiers.insert(0, items[j])
                j -= 1
            colours = [v for k, v, _ in modifiers if k == "colour"]
            colour = _colour_value(colours[0], group) if colours else None
            if colour is not None:
                claims.setdefault(colour_key, colour)
            if group == "hair":
                length = [v for k, v, _ in modifiers if k == "length"]
                if length:
                    claims.setdefault("hair_style", {"medium-length": "shoulder-length"}.get(length[0], length[0]))
            if group == "upper":
                patterns = [v for k, v, _ in modifiers if k == "pattern"]
                after = items[pos + 1] if pos + 1 < len(items) else None
                if after is not None and after[0] == "pattern" and after[2].startswith("with"):
                    patterns.append(after[1])
                if patterns:
                    claims.setdefault("upper_pattern", patterns[0])
                if len(colours) > 1 and patterns and patterns[0] in ("stripes", "plaid"):
                    second = _colour_value(colours[1], group)
                    if second is not None:
                        claims.setdefault("upper_pattern_colour", second)
    return claims
