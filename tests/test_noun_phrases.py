import json

import nltk
import pytest

from tipr.ecca import noun_phrases
from tipr.ecca.noun_phrases import caption_noun_phrases, extract_noun_phrases

EXPECTED = {
    "The woman is wearing a white T-shirt with black trousers and carries a red handbag. She has long black hair, "
    "and wears white sneakers.":
        {"black long hair", "black pants", "red bag", "white shoe", "white tshirt", "woman"},
    "A young lady with black long hair wearing a grey tee, blue jeans and a pair of white shoes. She is carrying "
    "a black purse on her left shoulder.":
        {"black bag", "black long hair", "blue jeans", "gray tshirt", "left shoulder", "white shoe", "young woman"},
    "The man has short dark hair and is wearing glasses, a blue and white striped top, dark blue shorts and "
    "flip-flops. He carries a backpack.":
        {"backpack", "blue dark shorts", "blue striped white top", "dark short hair", "flipflops", "glasses", "man"},
    "A guy with a gray hooded sweatshirt, khaki pants and brown shoes is holding a cellphone in his right hand.":
        {"brown shoe", "gray hooded sweatshirt", "khaki pants", "man", "phone", "right hand"},
    "In the picture, the pedestrian is walking.": set(),
    "": set(),
}


@pytest.mark.parametrize("caption", list(EXPECTED))
def test_fixed_captions_give_hand_written_phrases(caption, monkeypatch):
    monkeypatch.setattr(nltk.data, "path", [])  # proves no NLTK data (punkt, tagger) is needed
    assert caption_noun_phrases(caption) == EXPECTED[caption]


def test_cache_round_trip(tmp_path, monkeypatch):
    captions = list(EXPECTED)
    path = tmp_path / "cache" / "phrases.json"
    first = extract_noun_phrases(captions, cache_path=path)
    assert first == [frozenset(v) for v in EXPECTED.values()]
    assert json.loads(path.read_text())["key"] == noun_phrases.cache_key(captions)

    def fail(_):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(noun_phrases, "_extract_chunk", fail)
    assert extract_noun_phrases(captions, cache_path=path) == first
    monkeypatch.undo()
    changed = extract_noun_phrases(captions[:2], cache_path=path)  # other captions: recomputed, rewritten
    assert changed == first[:2]
    assert json.loads(path.read_text())["key"] == noun_phrases.cache_key(captions[:2])
    path.write_text("{not json")
    assert extract_noun_phrases(captions[:2], cache_path=path) == first[:2]
    assert list(tmp_path.joinpath("cache").iterdir()) == [path]  # no temporary files left behind


def test_workers_give_the_same_result():
    captions = list(EXPECTED) * 6
    assert extract_noun_phrases(captions, workers=2) == extract_noun_phrases(captions, workers=1)


def test_rejects_non_strings():
    with pytest.raises(TypeError, match="caption strings"):
        extract_noun_phrases(["a man", None])
