"""Noun phrases per caption (ECCA eq. 12) for WIGA's phrase-set IoU, normalised and cached.

Pipeline, identical on every machine and needing no downloaded data: lower-case, a regex
tokenizer, TextBlob's PatternTagger (the Pattern lexicon ships inside the textblob wheel;
NLTK's punkt and tagger data are not used), a few tag fixes for clothing words the lexicon
gets wrong, then ``nltk.RegexpParser`` chunking. Each phrase is normalised so that wording
differences between two captions of the same person do not count as different attributes:
determiners dropped, plural nouns singularised, synonyms mapped to one canonical word
(small explicit tables below), and modifiers sorted ("long black hair" == "black long hair").
Phrases made only of framing words ("the picture", "his left side") are dropped.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import multiprocessing
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import nltk

# bump when anything below changes the output: it keys the on-disk cache
EXTRACTOR_VERSION = "1"

# CC inside the modifiers keeps "a blue and white striped top" whole
GRAMMAR = r"NP: {<DT|PRP\$>?<JJ.*|VBN|CC>*<NN.*>+}"

# words annotators use interchangeably for the same garment / person; canonical word on the right
NOUN_SYNONYMS = {
    "tee": "tshirt",
    "trousers": "pants", "trouser": "pants", "slacks": "pants", "pant": "pants",
    "sneaker": "shoe", "trainer": "shoe",
    "handbag": "bag", "purse": "bag",
    "rucksack": "backpack", "knapsack": "backpack",
    "jumper": "sweater", "pullover": "sweater",
    "hoody": "hoodie",
    "spectacles": "glasses", "eyeglasses": "glasses",
    "cellphone": "phone",
    "guy": "man", "gentleman": "man", "male": "man",
    "lady": "woman", "female": "woman",
    "colour": "color",
}
MODIFIER_SYNONYMS = {"grey": "gray", "coloured": "colored", "greyish": "grayish"}
# plural-only nouns: never singularised ("shorts" is not a plural of "short")
PLURALE_TANTUM = frozenset({
    "pants", "trousers", "jeans", "shorts", "glasses", "sunglasses", "eyeglasses", "spectacles", "leggings",
    "tights", "clothes", "sweatpants", "overalls", "slacks", "capris", "khakis", "pajamas", "goggles",
    "headphones", "earphones", "flipflops",
})
# the Pattern lexicon tags these as adjectives or verbs; in these captions they are garments
FORCED_TAGS = {"top": "NN", "tops": "NNS", "flipflops": "NNS", "tshirts": "NNS"}
# phrases made only of these nouns describe the photo, a body side or anybody at all, not this person
FRAMING_NOUNS = frozenset({"picture", "image", "photo", "camera", "view", "background", "side", "front", "left",
                           "right", "pair", "color", "person", "pedestrian"})

_PRE_SUBSTITUTIONS = [
    (re.compile(r"'s\b"), ""),
    (re.compile(r"\bt[\s-]?shirt"), "tshirt"),
    (re.compile(r"\bflip[\s-]?flop"), "flipflop"),
]
_TOKEN = re.compile(r"[a-z]+(?:-[a-z]+)*|\d+|[^\sa-z\d]")
_PLURAL_TAGS = ("NNS", "NNPS")

_tagger = None
_chunker = None


def _tools():
    global _tagger, _chunker
    if _tagger is None:
        from textblob.en.taggers import PatternTagger

        _tagger, _chunker = PatternTagger(), nltk.RegexpParser(GRAMMAR)
    return _tagger, _chunker


@functools.lru_cache(maxsize=65536)
def _noun(word: str, tag: str) -> str:
    if tag in _PLURAL_TAGS and word not in PLURALE_TANTUM:
        from textblob import Word

        word = str(Word(word).singularize())
    return NOUN_SYNONYMS.get(word, word)


def _normalise(leaves: list[tuple[str, str]]) -> str | None:
    modifiers, nouns = set(), []
    for word, tag in leaves:
        if tag.startswith("NN"):
            nouns.append(_noun(word, tag))
        elif tag not in ("DT", "PRP$", "CC"):
            modifiers.add(MODIFIER_SYNONYMS.get(word, word))
    if all(noun in FRAMING_NOUNS for noun in nouns):
        return None
    return " ".join(sorted(modifiers) + nouns)


def caption_noun_phrases(caption: str) -> frozenset[str]:
    """Normalised noun phrases of one caption."""
    text = caption.lower()
    for pattern, replacement in _PRE_SUBSTITUTIONS:
        text = pattern.sub(replacement, text)
    tokens = _TOKEN.findall(text)
    if not tokens:
        return frozenset()
    tagger, chunker = _tools()
    tagged = tagger.tag(" ".join(tokens), tokenize=False)
    tagged = [(word, FORCED_TAGS.get(word, tag)) for word, tag in tagged]
    phrases = set()
    for subtree in chunker.parse(tagged).subtrees(lambda tree: tree.label() == "NP"):
        phrase = _normalise(subtree.leaves())
        if phrase:
            phrases.add(phrase)
    return frozenset(phrases)


def _extract_chunk(captions: list[str]) -> list[frozenset[str]]:
    return [caption_noun_phrases(caption) for caption in captions]


def cache_key(captions: Sequence[str]) -> str:
    """Hash of the extractor version and the captions, in order."""
    digest = hashlib.sha256(f"noun_phrases/{EXTRACTOR_VERSION}/{GRAMMAR}\n".encode())
    for caption in captions:
        digest.update(caption.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def _read_cache(path: Path, key: str, count: int) -> list[frozenset[str]] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or len(data.get("phrases", ())) != count:
        return None
    return [frozenset(phrases) for phrases in data["phrases"]]


def _write_cache(path: Path, key: str, phrases: list[frozenset[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"version": EXTRACTOR_VERSION, "key": key, "phrases": [sorted(p) for p in phrases]}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def extract_noun_phrases(captions: Sequence[str], *, cache_path: str | os.PathLike | None = None,
                         workers: int | None = None) -> list[frozenset[str]]:
    """Noun-phrase sets of every caption, in order.

    With ``cache_path`` (a JSON file) the result is read from it when it was computed for the
    same captions and extractor version, and written to it (atomically) otherwise. ``workers``:
    processes to use; ``None`` uses up to 2 for more than 20,000 captions and 1 below.
    """
    captions = list(captions)
    if not all(isinstance(caption, str) for caption in captions):
        raise TypeError("extract_noun_phrases expects a sequence of caption strings")
    key = cache_key(captions)
    path = Path(cache_path) if cache_path is not None else None
    if path is not None and path.is_file():
        cached = _read_cache(path, key, len(captions))
        if cached is not None:
            return cached
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if len(captions) > 20_000 else 1
    if workers <= 1:
        phrases = _extract_chunk(captions)
    else:
        size = -(-len(captions) // (workers * 4))
        chunks = [captions[i:i + size] for i in range(0, len(captions), size)]
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            phrases = [p for chunk in pool.map(_extract_chunk, chunks) for p in chunk]
    if path is not None:
        _write_cache(path, key, phrases)
    return phrases
