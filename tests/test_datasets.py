import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import tipr  # noqa: F401  (before open_clip)
import open_clip
from tipr.data import (CaptionList, ImageList, Partition, TrainPairs, TrainRecord, build_transform,
                       partition_pairs)
from tipr.data.transforms import CLIP_MEAN, CLIP_STD

COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
CAPTIONS = ["a man in a red coat", "a woman in green", "a child in blue"]
PIDS = [7, 8, 9]


@pytest.fixture(scope="module")
def tokenize():
    return open_clip.get_tokenizer("ViT-B-16")


@pytest.fixture
def records(tmp_path):
    out = []
    for i, (color, caption, pid) in enumerate(zip(COLORS, CAPTIONS, PIDS)):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (4, 8), color).save(path)
        out.append(TrainRecord(pid=pid, image_id=i, image_path=str(path), caption=caption))
    return out


def normalised(color):
    """The tensor the test transform makes of a solid-colour image."""
    return [(c / 255 - m) / s for c, m, s in zip(color, CLIP_MEAN, CLIP_STD)]


def make_pairs(records, tokenize, **kwargs):
    partition = Partition(setting="custom", ratios=(1 / 3,) * 3, seed=0, modes=np.array([0, 1, 2], dtype=np.int8))
    return TrainPairs(records, transform=build_transform((16, 8), train=False), tokenize=tokenize,
                      partition=partition, **kwargs)


def test_items_zero_the_missing_modality(records, tokenize):
    # the image of the image-missing pair is never opened: delete it
    os.remove(records[1].image_path)
    pairs = make_pairs(records, tokenize)
    complete, text_only, image_only = (pairs[i] for i in range(3))

    assert set(complete) == {"index", "image", "text", "has_image", "has_text"}
    assert [p["index"] for p in (complete, text_only, image_only)] == [0, 1, 2]
    assert complete["image"].shape == (3, 16, 8) and complete["image"].dtype == torch.float32
    torch.testing.assert_close(complete["image"][:, 5, 3], torch.tensor(normalised(COLORS[0])), rtol=0, atol=1e-4)
    assert complete["text"].dtype == torch.long
    assert torch.equal(complete["text"], tokenize([CAPTIONS[0]])[0])
    assert (complete["has_image"].item(), complete["has_text"].item()) == (True, True)

    assert (text_only["has_image"].item(), text_only["has_text"].item()) == (False, True)
    assert torch.equal(text_only["image"], torch.zeros(3, 16, 8))
    assert torch.equal(text_only["text"], tokenize([CAPTIONS[1]])[0])

    assert (image_only["has_image"].item(), image_only["has_text"].item()) == (True, False)
    assert torch.equal(image_only["text"], torch.zeros(77, dtype=torch.long))
    torch.testing.assert_close(image_only["image"][:, 0, 0], torch.tensor(normalised(COLORS[2])), rtol=0, atol=1e-4)


def test_batches_collate(records, tokenize):
    batch = next(iter(DataLoader(make_pairs(records, tokenize), batch_size=3)))
    assert batch["image"].shape == (3, 3, 16, 8) and batch["text"].shape == (3, 77)
    assert batch["has_image"].tolist() == [True, False, True] and batch["has_text"].tolist() == [True, True, False]
    assert batch["index"].tolist() == [0, 1, 2]


def test_unsupervised_view_carries_no_identity(records, tokenize):
    pairs = make_pairs(records, tokenize)
    assert all("pid" not in pairs[i] for i in range(len(pairs)))
    assert not hasattr(pairs, "pids")
    for value in vars(pairs).values():
        assert not (isinstance(value, list) and (value == PIDS or any(isinstance(v, TrainRecord) for v in value)))


def test_supervised_view_yields_pids(records, tokenize):
    pairs = make_pairs(records, tokenize, supervised=True)
    assert [pairs[i]["pid"] for i in range(3)] == PIDS


def test_no_partition_means_all_complete(records, tokenize):
    pairs = TrainPairs(records, transform=build_transform((16, 8)), tokenize=tokenize)
    assert pairs.modes.tolist() == [0, 0, 0] and all(pairs[i]["has_image"] and pairs[i]["has_text"] for i in range(3))


def test_partition_size_must_match(records, tokenize):
    with pytest.raises(ValueError, match="covers 4 train pairs but the dataset has 3"):
        TrainPairs(records, transform=build_transform(), tokenize=tokenize, partition=partition_pairs(4, "easy"))


def test_image_and_caption_lists(records, tokenize):
    images = ImageList([r.image_path for r in records], build_transform((16, 8)))
    torch.testing.assert_close(images[1][:, 8, 4], torch.tensor(normalised(COLORS[1])), rtol=0, atol=1e-4)
    captions = CaptionList(CAPTIONS, tokenize)
    assert len(captions) == 3 and torch.equal(captions[2], tokenize([CAPTIONS[2]])[0])


def test_bad_images_are_named(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    images = ImageList([tmp_path / "absent.png", broken], build_transform((16, 8)))
    with pytest.raises(FileNotFoundError, match="absent.png does not exist"):
        images[0]
    with pytest.raises(OSError, match="broken.png is not an image"):
        images[1]


@pytest.mark.parametrize("train", [False, True])
def test_transform_shapes(train):
    image = Image.new("RGB", (30, 70), (10, 20, 30))
    out = build_transform((384, 128), train=train)(image)
    assert out.shape == (3, 384, 128) and out.dtype == torch.float32
    names = [type(t).__name__ for t in build_transform(train=train).transforms]
    assert names == (["Resize", "RandomHorizontalFlip", "Pad", "RandomCrop", "ToTensor", "Normalize",
                      "RandomErasing"] if train else ["Resize", "ToTensor", "Normalize"])


def test_transform_rejects_a_bad_size():
    with pytest.raises(ValueError, match=r"image_size must be \(height, width\)"):
        build_transform(384)
