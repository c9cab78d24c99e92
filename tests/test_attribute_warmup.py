"""tipr.generation.attribute_warmup: targets only where the caption names the attribute; the warm-up teaches a
random text tower to tell which colour is the shirt's and which the trousers'."""

import itertools

import pytest
import torch

from tipr.generation.attribute_warmup import ATTRIBUTE_WORDS, IGNORE, attribute_targets, warm_up_text_tower
from tipr.generation.tiny_pipeline import TiprTextEncoder, unet_conditioning

PERSON = {"gender": "female", "upper_colour": "red", "lower_colour": "beige", "hair_colour": "blonde",
          "upper_type": "sweater", "lower_type": "skirt", "shoes_colour": "white"}


@pytest.mark.parametrize("caption, key, expected", [
    ("A woman in a scarlet jumper and a khaki skirt.", "upper_colour", "red"),   # synonyms of the value count
    ("A woman in a scarlet jumper and a khaki skirt.", "lower_colour", "beige"),
    ("A woman in a scarlet jumper and a khaki skirt.", "upper_type", "sweater"),
    ("A woman in a scarlet jumper and a khaki skirt.", "shoes_colour", None),    # white is not said
    ("She has blond hair and wears a skirt.", "hair_colour", "blonde"),
    ("She has blond hair and wears a skirt.", "upper_colour", None),
    ("Someone walking.", "gender", None),
    ("This girl is walking.", "gender", "female"),
])
def test_targets_only_where_the_caption_names_the_value(caption, key, expected):
    column = attribute_targets([caption], [PERSON]).get(key, torch.tensor([IGNORE]))  # no caption names it
    assert int(column[0]) == (IGNORE if expected is None else list(ATTRIBUTE_WORDS[key]).index(expected))


def test_records_without_attributes_give_no_targets():
    assert attribute_targets(["a man in a red coat"], [None]) == {}


def test_warm_up_teaches_which_colour_is_the_shirts():
    torch.manual_seed(0)
    encoder = TiprTextEncoder.from_open_clip("tipr-tiny", None)
    colours = ["red", "green", "blue", "yellow"]
    pairs = [(u, lo) for u, lo in itertools.product(colours, colours) if u != lo]
    captions = [f"a man in a {u} shirt and {lo} trousers" for u, lo in pairs]
    attributes = [{"upper_colour": u, "lower_colour": lo, "gender": "male"} for u, lo in pairs]
    targets = attribute_targets(captions, attributes)
    assert set(targets) == {"upper_colour", "lower_colour", "gender"}
    ids = encoder.tokenize(captions)
    before = encoder.text.token_embedding.weight.detach().clone()

    def pool(features, token_ids):
        return unet_conditioning(features, encoder.attention_mask(token_ids))["class_labels"]

    result = warm_up_text_tower(encoder, ids, targets, pool=pool, steps=150, batch_size=12, learning_rate=2e-3)
    # mean pooling of a bag of words cannot say which colour is whose: the tower had to learn word order
    assert result.accuracy["upper_colour"] == 1.0 and result.accuracy["lower_colour"] == 1.0
    assert not torch.equal(before, encoder.text.token_embedding.weight)
    assert not any(p.requires_grad for p in encoder.parameters())
