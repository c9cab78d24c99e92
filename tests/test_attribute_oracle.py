import pytest
import torch

from tipr.attribute_oracle import attribute_oracle, oracle_scores
from tipr.data import load_dataset
from tipr.data.caption_attributes import caption_attributes
from tipr.data.records import EvalSplit


@pytest.mark.parametrize("caption,expected", [
    ("A woman in a red coat and black jeans.",
     {"gender": "female", "upper_type": "coat", "upper_colour": "red", "lower_type": "jeans", "lower_colour": "black"}),
    ("The man has dark hair and wears a dark blue jacket with stripes.",
     {"gender": "male", "hair_colour": "black", "upper_type": "jacket", "upper_colour": "navy",
      "upper_pattern": "stripes"}),
    ("She wears an orange and black striped tee, grey shorts and white sneakers, carrying a green knapsack.",
     {"gender": "female", "upper_type": "t-shirt", "upper_colour": "orange", "upper_pattern": "stripes",
      "upper_pattern_colour": "black", "lower_type": "shorts", "lower_colour": "grey", "shoes_colour": "white",
      "bag_type": "backpack", "bag_colour": "green"}),
    ("Guy with short golden hair, eyeglasses, a khaki baseball cap and a phone in his hand.",
     {"gender": "male", "hair_style": "short", "hair_colour": "blonde", "glasses": True, "headwear": "cap",
      "headwear_colour": "beige", "carry": "phone"}),
    ("A stocky pedestrian with a long coat.", {"build": "heavy", "upper_type": "coat"}),
    ("", {}),
])
def test_caption_attributes(caption, expected):
    assert caption_attributes(caption) == expected


def _image(**kw):
    base = {"gender": "male", "upper_type": "coat", "upper_colour": "black", "lower_type": "jeans",
            "lower_colour": "blue", "glasses": False}
    return base | kw


def test_rare_claims_outrank_common_ones_and_ties_are_seeded():
    images = [_image(), _image(upper_colour="red"), _image(upper_colour="red", lower_colour="black"), _image()]
    captions = ["a man in a red coat and black jeans", "a man in a black coat", "a woman"]
    scores = oracle_scores(captions, images, seed=0)
    assert scores[0].argmax() == 2 and scores[0, 1] > scores[0, 0]
    # "black coat" matches images 0 and 3 (rarity -log 1/2 each); the woman matches nobody: all tie
    assert scores[1, 0] > scores[1, 1] and scores[1, 3] > scores[1, 2]
    assert scores[1, 0] == pytest.approx(scores[1, 3], abs=1e-5) and scores[1, 0] != scores[1, 3]
    assert torch.equal(scores, oracle_scores(captions, images, seed=0))
    assert not torch.equal(scores.argsort(1), oracle_scores(captions, images, seed=3).argsort(1))


def test_oracle_metrics_and_errors():
    split = EvalSplit(image_paths=["a", "b", "c"], image_pids=[5, 5, 9], captions=["a red coat", "a black coat"],
                      caption_pids=[5, 9], image_attributes=[_image(upper_colour="red")] * 2 + [_image()])
    assert attribute_oracle(split)["R1"] == 100.0
    with pytest.raises(ValueError, match="attribute records"):
        attribute_oracle(EvalSplit(image_paths=["a"], image_pids=[1], captions=["x"], caption_pids=[1]))
    with pytest.raises(ValueError, match="needs every gallery image"):
        oracle_scores(["x"], [None])


def test_synthpedes_splits_carry_the_attributes(synth):
    data = load_dataset("synthpedes", synth)
    assert len(data.test.image_attributes) == data.test.num_images
    for caption, image in zip(data.test.captions, data.test.caption_images):  # every claim is true of its image
        truth = data.test.image_attributes[image]
        assert all(truth[k] == v for k, v in caption_attributes(caption).items()), caption
    assert attribute_oracle(data.test)["R1"] > 90
