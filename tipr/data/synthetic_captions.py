"""Attribute-grammar captions for SynthPEDES: synonyms, varied order and partial mention, like human annotators.

Every table maps a canonical attribute value to the words a caption may use for it; the tests read the same
tables to check that a caption only names what the image shows.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "black": ("black",), "white": ("white",), "grey": ("grey", "gray"), "red": ("red", "crimson", "scarlet"),
    "blue": ("blue", "royal blue"), "navy": ("navy", "navy blue", "dark blue"),
    "light blue": ("light blue", "pale blue", "sky blue"), "green": ("green",), "yellow": ("yellow",),
    "orange": ("orange",), "pink": ("pink",), "purple": ("purple", "violet"), "brown": ("brown",),
    "beige": ("beige", "khaki", "tan"),
}
HAIR_COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "black": ("black", "dark"), "brown": ("brown", "brunette"), "blonde": ("blonde", "blond", "golden"),
    "grey": ("grey", "gray", "silver"), "red": ("red", "ginger", "auburn"),
}
GENDER_WORDS = {"male": ("man", "guy", "gentleman", "male"), "female": ("woman", "lady", "girl", "female")}
PRONOUNS = {"male": ("he", "his"), "female": ("she", "her")}
BUILD_WORDS = {"slim": ("slim", "thin", "slender"), "average": (), "heavy": ("heavy-set", "stocky", "chubby")}
HAIR_STYLE_WORDS = {"short": ("short",), "shoulder-length": ("shoulder-length", "medium-length"),
                    "long": ("long",), "ponytail": ("ponytail",), "bun": ("bun",)}
UPPER_WORDS = {"t-shirt": ("t-shirt", "tee", "tee shirt"), "shirt": ("shirt", "button-up shirt", "long-sleeved shirt"),
               "jacket": ("jacket", "zip-up jacket"), "sweater": ("sweater", "jumper", "pullover"),
               "coat": ("coat", "long coat", "overcoat")}
PATTERN_WORDS = {"plain": ("plain",), "stripes": ("striped", "with stripes"),
                 "plaid": ("plaid", "checked", "checkered"), "logo": ("with a logo", "with a printed logo")}
LOWER_WORDS = {"trousers": ("trousers", "pants", "slacks"), "jeans": ("jeans", "denim jeans"),
               "shorts": ("shorts",), "skirt": ("skirt",)}
SHOE_WORDS = ("shoes", "sneakers", "trainers")
BAG_WORDS = {"backpack": ("backpack", "rucksack", "knapsack"),
             "shoulder bag": ("shoulder bag", "messenger bag", "crossbody bag"), "handbag": ("handbag", "purse")}
HEADWEAR_WORDS = {"cap": ("cap", "baseball cap"), "hat": ("hat", "sun hat", "wide-brimmed hat")}
GLASSES_WORDS = ("glasses", "eyeglasses", "spectacles")
CARRY_WORDS = {"umbrella": ("umbrella", "closed umbrella"), "phone": ("phone", "cell phone", "smartphone"),
               "bottle": ("bottle", "water bottle", "bottle of water")}
# how often an annotator mentions a visible attribute
MENTION = {"hair": 0.6, "build": 0.2, "upper": 0.92, "pattern": 0.7, "lower": 0.85, "shoes": 0.55, "bag": 0.8,
           "headwear": 0.8, "glasses": 0.75, "carry": 0.7, "view": 0.12}
_PLURAL = {"trousers", "pants", "slacks", "jeans", "denim jeans", "shorts"}


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _an(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _join(items: list[str], rng: np.random.Generator) -> str:
    if len(items) == 1:
        return items[0]
    last = ", and " if len(items) > 2 and rng.random() < 0.3 else " and "
    return ", ".join(items[:-1]) + last + items[-1]


def _colour(rng: np.random.Generator, name: str | None, omit: float = 0.08) -> list[str]:
    return [] if name is None or rng.random() < omit else [_pick(rng, COLOUR_WORDS[name])]


def _phrases(a: dict[str, Any], said: set[str], rng: np.random.Generator, possessive: str) -> dict[str, str]:
    """A noun phrase for every mentioned attribute group."""
    out = {}
    if "hair" in said:
        colour = [] if rng.random() < 0.25 else [_pick(rng, HAIR_COLOUR_WORDS[a["hair_colour"]])]
        style = a["hair_style"]
        if style in ("ponytail", "bun"):
            tie = _pick(rng, ("in a", "tied in a", "tied up in a"))
            out["hair"] = (" ".join(colour + ["hair", tie, style]) if colour or rng.random() < 0.5
                           else _an(style))
        else:
            out["hair"] = " ".join([_pick(rng, HAIR_STYLE_WORDS[style])] + colour + ["hair"])
    if "upper" in said:
        pattern, words, after = a["upper_pattern"], _colour(rng, a["upper_colour"]), ""
        if "pattern" in said:
            if pattern in ("stripes", "plaid") and words and rng.random() < 0.5:
                words = [f"{words[0]} and {_pick(rng, COLOUR_WORDS[a['upper_pattern_colour']])}"]
            word = _pick(rng, PATTERN_WORDS[pattern])
            if word.startswith("with"):
                after = " " + word
            elif pattern == "plain":
                words.insert(0, word)
            else:
                words.append(word)
        out["upper"] = _an(" ".join(words + [_pick(rng, UPPER_WORDS[a["upper_type"]])])) + after
    if "lower" in said:
        noun = _pick(rng, LOWER_WORDS[a["lower_type"]])
        phrase = " ".join(_colour(rng, a["lower_colour"]) + [noun])
        out["lower"] = (("a pair of " + phrase if rng.random() < 0.3 else phrase) if noun in _PLURAL
                        else _an(phrase))
    if "shoes" in said:
        phrase = " ".join(_colour(rng, a["shoes_colour"], 0.15) + [_pick(rng, SHOE_WORDS)])
        out["shoes"] = "a pair of " + phrase if rng.random() < 0.3 else phrase
    if "headwear" in said:
        noun = _pick(rng, HEADWEAR_WORDS[a["headwear"]])
        out["headwear"] = _an(" ".join(_colour(rng, a["headwear_colour"]) + [noun]))
    if "glasses" in said:
        out["glasses"] = _pick(rng, ("glasses", "a pair of glasses", "eyeglasses", "spectacles"))
    if "bag" in said:
        out["bag"] = _an(" ".join(_colour(rng, a["bag_colour"], 0.15) + [_pick(rng, BAG_WORDS[a["bag_type"]])]))
        if a["bag_type"] == "backpack" and rng.random() < 0.3:
            out["bag"] += f" on {possessive} back"
    if "carry" in said:
        out["carry"] = _an(_pick(rng, CARRY_WORDS[a["carry"]]))
        if rng.random() < 0.3:
            out["carry"] += f" in {possessive} hand"
    return out


def describe(a: dict[str, Any], visible: set[str], rng: np.random.Generator) -> str:
    """One caption naming a random subset of the ``visible`` attribute groups of a person."""
    # sorted: a set's order follows PYTHONHASHSEED, and the draws must not (the same seed, the same captions)
    said = {g for g in sorted(visible) if g in MENTION and rng.random() < MENTION[g]}
    main = [g for g in ("hair", "upper", "lower", "shoes", "bag", "headwear", "carry") if g in visible]
    while len(said & set(main)) < min(3, len(main)):  # annotators say at least a few things
        said.add(_pick(rng, [g for g in main if g not in said]))
    if a["build"] == "average":
        said.discard("build")
    if a["upper_pattern"] == "plain" and rng.random() < 0.8:  # "plain" is seldom worth saying
        said.discard("pattern")
    he, his = PRONOUNS[a["gender"]]
    np_ = _phrases(a, said, rng, his)

    wear = [np_[g] for g in ("upper", "lower", "shoes", "headwear", "glasses") if g in np_]
    if len(wear) > 1 and rng.random() < 0.4:
        wear = [wear[i] for i in rng.permutation(len(wear))]
    preds: list[tuple[str, str]] = []  # (participle after the subject, finite verb phrase)
    if "hair" in np_:
        preds.append(("with " + np_["hair"], _pick(rng, ("has ", "has got ")) + np_["hair"]))
    if wear:
        verbs = ("wearing", "dressed in", "in") if "glasses" not in np_ else ("wearing",)
        finite = ("is wearing", "wears", "is dressed in", "has on") if "glasses" not in np_ else ("is wearing", "wears")
        text = _join(wear, rng)
        preds.append((_pick(rng, verbs) + " " + text, _pick(rng, finite) + " " + text))
    held = [np_[g] for g in ("bag", "carry") if g in np_]
    if held:
        text = _join(held, rng)
        preds.append((_pick(rng, ("carrying", "holding", "with")) + " " + text,
                      _pick(rng, ("is carrying", "carries", "has")) + " " + text))
    if "view" in visible and rng.random() < MENTION["view"]:
        preds.append({"front": ("facing the camera", "is walking towards the camera"),
                      "back": ("walking away from the camera", "is walking away from the camera"),
                      "side": ("seen from the side", "is walking past the camera")}[a["view"]])
    if len(preds) > 1 and rng.random() < 0.5:
        preds = [preds[i] for i in rng.permutation(len(preds))]

    noun = _pick(rng, GENDER_WORDS[a["gender"]]) if rng.random() < 0.85 else _pick(rng, ("person", "pedestrian"))
    if "build" in said:
        noun = _pick(rng, BUILD_WORDS[a["build"]]) + " " + noun
    det = _pick(rng, ("a", "the", "this"))
    subject = (_an(noun) if det == "a" else f"{det} {noun}").capitalize()
    style = rng.random()
    if style < 0.4:  # one long sentence of participles
        parts = [p for p, _ in preds]
        text = subject + " " + (parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + _pick(
            rng, (", ", " and ")) + parts[-1]) + "."
    elif style < 0.9:  # a sentence per fact, the first one with the subject
        head = preds[0][0] + " " + preds[1][1] if style < 0.6 and len(preds) > 1 else preds[0][1]
        rest = preds[2:] if style < 0.6 and len(preds) > 1 else preds[1:]
        text = " ".join([f"{subject} {head}."] + [f"{he.capitalize()} {f}." for _, f in rest])
    else:  # annotator shorthand: a bare list
        items = ([np_["hair"]] if "hair" in np_ else []) + wear + held
        text = f"{noun.capitalize()} with {_join(items, rng)}."
    return text


def _detail_sentences(a: dict[str, Any], visible: set[str], rng: np.random.Generator) -> list[str]:
    """Short sentences restating one visible fact each, as annotators of long descriptions add them."""
    he, his = PRONOUNS[a["gender"]]
    He, His = he.capitalize(), his.capitalize()
    out = []
    if "hair" in visible:
        style = a["hair_style"]
        colour = _pick(rng, HAIR_COLOUR_WORDS[a["hair_colour"]])
        out.append(f"{His} hair is {colour} and tied in a {style}." if style in ("ponytail", "bun")
                   else f"{His} hair is {colour} and {_pick(rng, HAIR_STYLE_WORDS[style])}.")
    upper = _pick(rng, UPPER_WORDS[a["upper_type"]])
    if "upper" in visible:
        out.append(f"{His} {upper} is {_pick(rng, COLOUR_WORDS[a['upper_colour']])}.")
        if "pattern" in visible and a["upper_pattern"] != "plain":
            word = _pick(rng, PATTERN_WORDS[a["upper_pattern"]])
            out.append(f"The {upper} is {word}." if not word.startswith("with") else f"It is a {upper} {word}.")
    if "lower" in visible:
        noun = _pick(rng, LOWER_WORDS[a["lower_type"]])
        verb = "are" if noun in _PLURAL else "is"
        out.append(f"{His} {noun} {verb} {_pick(rng, COLOUR_WORDS[a['lower_colour']])}.")
    if "shoes" in visible:
        out.append(f"{His} {_pick(rng, SHOE_WORDS)} are {_pick(rng, COLOUR_WORDS[a['shoes_colour']])}.")
    if "bag" in visible:
        out.append(f"The {_pick(rng, BAG_WORDS[a['bag_type']])} {_pick(rng, ('is', 'looks'))} "
                   f"{_pick(rng, COLOUR_WORDS[a['bag_colour']])}.")
    if "headwear" in visible:
        noun = _pick(rng, HEADWEAR_WORDS[a["headwear"]])
        out.append(f"{He} has {_an(_pick(rng, COLOUR_WORDS[a['headwear_colour']]) + ' ' + noun)} on {his} head.")
    if "glasses" in visible:
        out.append(f"{He} is also wearing {_pick(rng, GLASSES_WORDS)}.")
    if "carry" in visible:
        out.append(f"{He} is holding {_an(_pick(rng, CARRY_WORDS[a['carry']]))}.")
    if "view" in visible:
        out.append({"front": f"{He} is facing the camera.", "back": f"{He} has {his} back to the camera.",
                    "side": f"{He} is seen from the side."}[a["view"]])
    if a.get("occluded"):
        out.append(f"Part of {his} body is hidden behind something.")
    out.append(f"{He} {_pick(rng, ('seems to be', 'appears to be', 'is'))} walking.")
    return [out[i] for i in rng.permutation(len(out))]


def lengthen(text: str, a: dict[str, Any], visible: set[str], rng: np.random.Generator, words: int) -> str:
    """``text`` with detail sentences appended until it has about ``words`` words (or the facts run out)."""
    for sentence in _detail_sentences(a, visible, rng):
        if len(text.split()) + len(sentence.split()) / 2 > words:  # stop nearest to the target
            break
        text += " " + sentence
    return text


def caption_image(a: dict[str, Any], visible: set[str], rng: np.random.Generator, count: int,
                  words: Sequence[int] | None = None) -> list[str]:
    """``count`` captions of one image, distinct where the grammar allows; with ``words``, caption i is
    lengthened toward ``words[i]`` words."""
    captions: list[str] = []
    for _ in range(count * 10):
        if words is None:
            text = describe(a, visible, rng)
        else:  # of three drafts the one nearest the target length, then detail sentences up to it
            target = words[len(captions)]
            drafts = [describe(a, visible, rng) for _ in range(3)]
            text = min(drafts, key=lambda d: abs(len(d.split()) - target))
            text = lengthen(text, a, visible, rng, target)
        if text not in captions:
            captions.append(text)
        if len(captions) == count:
            return captions
    return (captions * count)[:count]
