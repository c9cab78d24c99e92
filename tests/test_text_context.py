"""Captions longer than the text tower's context: counted, reported once, cut as CLIP cuts them, and WIGA's noun
phrases read only the part the encoder sees."""

import logging

import open_clip
import pytest

from tipr.data.text_context import LongCaptions, long_captions, report_long_captions, seen_text, token_count

SHORT = "A man in a red shirt and black jeans."
# ICFG-PEDES style: one long description; the umbrella comes after the 77th token
LONG = ("The man is wearing a grey long-sleeved jacket with a white logo on the chest, a pair of loose dark blue "
        "jeans with rolled up cuffs and white sneakers with black soles. He has short black hair and is carrying "
        "a black backpack on his back, and a brown paper bag in his left hand. He is walking along the street "
        "towards the camera on a sunny afternoon, looking down at the ground. He also holds a purple umbrella "
        "and a silver water bottle.")


@pytest.fixture(scope="module")
def tokenizer():
    return open_clip.get_tokenizer("ViT-B-16")


def _ids(tokenizer, caption, context=77):
    return tokenizer([caption], context_length=context)[0]


@pytest.mark.parametrize("caption", [SHORT, LONG, "", "a"])
def test_token_count_is_the_uncut_length(tokenizer, caption):
    assert token_count(tokenizer, caption) == int((_ids(tokenizer, caption, 400) != 0).sum())


def test_a_caption_that_fits_is_seen_whole(tokenizer):
    assert seen_text(tokenizer, SHORT) == SHORT


@pytest.mark.parametrize("context", [16, 40, 77])
def test_the_seen_text_of_a_long_caption_is_what_clip_keeps(tokenizer, context):
    tokenizer.context_length, original = context, tokenizer.context_length
    try:
        seen = seen_text(tokenizer, LONG)
    finally:
        tokenizer.context_length = original
    assert token_count(tokenizer, LONG) > context >= token_count(tokenizer, seen)
    assert LONG.lower().startswith(seen)
    kept, cut = _ids(tokenizer, seen, context), _ids(tokenizer, LONG, context)
    n = int((kept != 0).sum()) - 1  # everything the seen text tokenizes to, before its end token
    assert kept[:n].tolist() == cut[:n].tolist()  # a prefix of what CLIP keeps (a half-seen word is left out)
    assert context - 2 - n < 3


def test_long_captions_are_counted_with_the_longest(tokenizer):
    found = long_captions(tokenizer, [SHORT, LONG, LONG + " Twice.", SHORT])
    assert found == LongCaptions(count=2, total=3, longest=token_count(tokenizer, LONG + " Twice."),
                                 context_length=77)


def test_the_report_is_one_warning_and_never_an_error(tokenizer, caplog):
    with caplog.at_level(logging.WARNING, logger="tipr.data.text_context"):
        report_long_captions(tokenizer, [SHORT] * 3, "none long")
        assert not caplog.records
        report_long_captions(tokenizer, [SHORT, LONG], "icfg-pedes train")
    (record,) = caplog.records
    assert record.getMessage().startswith("icfg-pedes train: 1 of 2 captions are longer than the text encoder's "
                                          f"77 tokens (the longest has {token_count(tokenizer, LONG)})")
    assert tokenizer([LONG]).shape == (1, 77)


def test_wiga_phrases_come_from_the_seen_text():
    from tipr.data import TrainRecord
    from tipr.models.tipr_model import TIPRModel
    from tipr.objectives import build_objective

    model = TIPRModel(method="ecca", backbone=dict(name="tipr-tiny", pretrained=None, image_size=[64, 32]))
    records = [TrainRecord(pid=0, image_id=0, image_path="a.png", caption=LONG),
               TrainRecord(pid=1, image_id=1, image_path="b.png", caption=SHORT)]
    phrases = set(build_objective(model, records=records).phrases.vocab)
    assert {"jacket", "backpack"} <= {word for p in phrases for word in p.split()}
    assert not {"umbrella", "bottle"} & {word for p in phrases for word in p.split()}
