import json
from pathlib import Path

import numpy as np
import pytest

from tipr.data import load_dataset
from tipr.data.alt_text import alt_text, write_alt_text_dataset
from tipr.data.caption_attributes import caption_attributes

PERSON = {"gender": "female", "hair_colour": "blonde", "hair_style": "long", "upper_type": "coat",
          "upper_colour": "navy", "upper_pattern": "plain", "lower_type": "skirt", "lower_colour": "green",
          "shoes_colour": "white", "bag_type": "backpack", "bag_colour": "red", "headwear": "none",
          "headwear_colour": None, "glasses": False, "carry": "none", "build": "average",
          "visible": ["gender", "hair", "upper", "lower", "shoes", "bag"]}


@pytest.mark.parametrize("seed", range(12))
def test_alt_text_names_one_or_two_true_things(seed):
    caption = alt_text(PERSON, np.random.default_rng(seed))
    claims = caption_attributes(caption)
    assert all(PERSON[k] == v for k, v in claims.items()), caption
    groups = {k.split("_")[0] for k in claims if k != "gender"}
    assert 1 <= len(groups) <= 2 and len(caption.split()) <= 12, caption


def test_only_visible_groups_are_named():
    back = PERSON | {"visible": ["lower"]}
    for seed in range(8):
        claims = caption_attributes(alt_text(back, np.random.default_rng(seed)))
        assert set(claims) - {"gender"} <= {"lower_type", "lower_colour"}


def test_alt_text_dataset_keeps_images_and_people(synth, tmp_path):
    folder = write_alt_text_dataset(synth, tmp_path / "alt", seed=3)
    source, alt = load_dataset("cuhk-pedes", synth), load_dataset("cuhk-pedes", folder)
    assert [r.pid for r in alt.train] == [r.pid for r in source.train]
    assert [Path(p).name for p in alt.train_image_paths] == [Path(p).name for p in source.train_image_paths]
    assert all(Path(p).is_file() for p in alt.test.image_paths)
    assert max(len(r.caption.split()) for r in alt.train) <= 12 < max(len(r.caption.split()) for r in source.train)
    before = (folder / "reid_raw.json").read_text()
    assert write_alt_text_dataset(synth, tmp_path / "alt", seed=99) == folder  # kept, not redrawn
    assert (folder / "reid_raw.json").read_text() == before
    bare = tmp_path / "bare"
    bare.mkdir()
    records = json.loads((Path(synth) / "reid_raw.json").read_text())
    (bare / "reid_raw.json").write_text(json.dumps([r | {"attributes": None} for r in records]))
    with pytest.raises(ValueError, match="without 'attributes'"):
        write_alt_text_dataset(bare, tmp_path / "alt2")


def test_cli_writes_the_dataset(synth, tmp_path, capsys):
    from tipr.data.alt_text import main

    main(["--source", synth, "--out", str(tmp_path / "cli"), "--seed", "1"])
    folder = Path(capsys.readouterr().out.strip())
    assert folder == tmp_path / "cli" / "CUHK-PEDES" and (folder / "reid_raw.json").is_file()


@pytest.mark.parametrize("per_image", [1, 3])
def test_keep_captions_puts_the_descriptions_first(synth, tmp_path, per_image):
    folder = write_alt_text_dataset(synth, tmp_path / "mixed", captions_per_image=per_image, keep_captions=True)
    source = json.loads((Path(synth) / "reid_raw.json").read_text())
    mixed = json.loads((folder / "reid_raw.json").read_text())
    for before, after in zip(source, mixed, strict=True):
        assert after["captions"][:len(before["captions"])] == before["captions"]
        assert len(after["captions"]) == len(before["captions"]) + per_image
        assert len(after["processed_tokens"]) == len(after["captions"])
