"""SynthPEDES: determinism, the CUHK-PEDES layout, attribute diversity, captions true to the image."""

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tipr.data import synthetic_captions as sc
from tipr.data.synthetic import (VIEWS, generate_synthpedes, main, sample_identity, split_sizes, tokens,
                                 visible_groups)

SMALL = dict(identities=6, images_per_identity=4, captions_per_image=2, image_size=(64, 32))
COMPARED = ("gender", "build", "hair_style", "hair_colour", "upper_type", "upper_colour", "upper_pattern",
            "lower_type", "lower_colour", "shoes_colour", "bag_type", "bag_colour", "headwear", "headwear_colour",
            "glasses", "carry")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return {key: generate_synthpedes(root / key, seed=seed, workers=workers, **SMALL)
            for key, seed, workers in (("a", 0, 1), ("b", 0, 2), ("c", 1, 1))}


def _files(dataset: Path) -> dict[str, bytes]:
    return {str(p.relative_to(dataset)): p.read_bytes() for p in sorted(dataset.rglob("*")) if p.is_file()}


def _records(dataset: Path) -> list[dict]:
    return json.loads((dataset / "reid_raw.json").read_text())


def test_same_seed_same_bytes_whatever_workers(made):
    a, b = _files(made["a"]), _files(made["b"])
    assert len(a) == 6 * 4 + 2 and a == b


def test_other_seed_other_dataset(made):
    a, c = _files(made["a"]), _files(made["c"])
    assert a.keys() == c.keys()
    assert sum(a[k] != c[k] for k in a) == len(a)


def test_cuhk_pedes_layout(made):
    records = _records(made["a"])
    assert made["a"].name == "CUHK-PEDES" and len(records) == 24
    ids = {split: sorted({r["id"] for r in records if r["split"] == split}) for split in ("train", "val", "test")}
    assert ids == {"train": [1, 2, 3, 4], "val": [5], "test": [6]}
    for r in records:
        assert {"split", "captions", "file_path", "processed_tokens", "id", "attributes"} <= r.keys()
        assert r["file_path"].startswith("SynthPEDES/") and len(r["captions"]) == 2
        assert r["processed_tokens"] == [tokens(c) for c in r["captions"]]
        image = Image.open(made["a"] / "imgs" / r["file_path"])
        assert image.size == (32, 64) and image.mode == "RGB"


@pytest.mark.parametrize("n, sizes", [(3, (1, 1, 1)), (10, (8, 1, 1)), (1000, (800, 100, 100))])
def test_split_sizes(n, sizes):
    assert split_sizes(n) == sizes


def test_identities_differ_in_many_attributes():
    people = [sample_identity(0, pid) for pid in range(1, 61)]
    diffs = [sum(p[k] != q[k] for k in COMPARED) for p, q in itertools.combinations(people, 2)]
    assert min(diffs) >= 1 and np.mean(np.array(diffs) >= 3) > 0.95
    for key in ("upper_colour", "lower_type", "bag_type", "hair_style"):  # shared values, not unique ones
        assert 1 < len({p[key] for p in people}) < 30


def test_views_vary_within_identity(made):
    records = _records(made["a"])
    for pid in range(1, 7):
        views = [r["attributes"]["view"] for r in records if r["id"] == pid]
        assert set(views) == set(VIEWS)
    for r in records:
        assert (r["attributes"]["facing"] in ("left", "right")) == (r["attributes"]["view"] == "side")


def _found(text: str, phrases) -> tuple[list[str], str]:
    """Phrases present as whole words, longest first, and the text with them blanked out."""
    hits = []
    for phrase in sorted(phrases, key=len, reverse=True):
        pattern = rf"(?<![\w-]){re.escape(phrase)}(?![\w-])"
        if re.search(pattern, text):
            hits.append(phrase)
            text = re.sub(pattern, " # ", text)
    return hits, text


def _problems(caption: str, a: dict, visible: set) -> list[str]:
    text, out = caption.lower(), []
    colours = {}
    for table in (sc.COLOUR_WORDS, sc.HAIR_COLOUR_WORDS):
        for name, words in table.items():
            for w in words:
                colours.setdefault(w, set()).add(name)
    allowed = {a["hair_colour"], a["upper_colour"], a["lower_colour"]}
    allowed |= {a["shoes_colour"]} if "shoes" in visible else set()
    allowed |= {a["bag_colour"]} if "bag" in visible else set()
    allowed |= {a["headwear_colour"]} if "headwear" in visible else set()
    allowed |= {a["upper_pattern_colour"]} if "pattern" in visible else set()
    out += [f"colour {w!r}" for w in _found(text, colours)[0] if not colours[w] & allowed]
    for key, group, table in (("upper_type", "upper", sc.UPPER_WORDS), ("lower_type", "lower", sc.LOWER_WORDS),
                              ("bag_type", "bag", sc.BAG_WORDS), ("headwear", "headwear", sc.HEADWEAR_WORDS),
                              ("carry", "carry", sc.CARRY_WORDS), ("upper_pattern", "pattern", sc.PATTERN_WORDS)):
        rest = _found(text, table[a[key]])[1] if group in visible and a[key] in table else text
        others = [w for value, words in table.items() if value != a[key] or group not in visible for w in words]
        out += [f"{key} {w!r}" for w in _found(rest, others)[0]]
    if "glasses" not in visible:
        out += [f"glasses {w!r}" for w in _found(text, sc.GLASSES_WORDS)[0]]
    other = "female" if a["gender"] == "male" else "male"
    out += [f"gender {w!r}" for w in _found(text, sc.GENDER_WORDS[other] + sc.PRONOUNS[other])[0]]
    for match in re.finditer(r"\b(short|shoulder-length|medium-length|long)\b(?: \w+)? hair\b", text):
        if match.group(1) not in sc.HAIR_STYLE_WORDS[a["hair_style"]]:
            out.append(f"hair {match.group(0)!r}")
    out += [f"hair {w!r}" for w in ("ponytail", "bun") if w != a["hair_style"] and _found(text, [w])[0]]
    return out


def test_captions_mention_only_what_the_image_shows(made):
    checked = 0
    for r in _records(made["a"]):
        for caption in r["captions"]:
            assert _problems(caption, r["attributes"], set(r["attributes"]["visible"])) == [], caption
            checked += 1
    rng = np.random.default_rng(0)
    mentions_shoes = []
    for pid in range(1, 151):
        a = sample_identity(7, pid)
        for view, occluded in itertools.product(VIEWS, (None, "bottom")):
            visible = visible_groups(a, view, occluded)
            for caption in sc.caption_image({**a, "view": view}, visible, rng, 2):
                assert _problems(caption, {**a, "view": view}, visible) == [], (caption, a, view)
                if "shoes" in visible:
                    mentions_shoes.append(bool(_found(caption.lower(), sc.SHOE_WORDS)[0]))
                checked += 1
    assert checked > 1800 and 0.3 < np.mean(mentions_shoes) < 0.9  # a random subset, like annotators


def test_captions_use_synonyms_and_vary():
    rng = np.random.default_rng(1)
    a = {**sample_identity(0, 1), "lower_type": "trousers", "lower_colour": "red", "view": "front"}
    captions = sc.caption_image(a, visible_groups(a, "front"), rng, 60)
    text = " ".join(captions).lower()
    assert len(set(captions)) == 60
    assert all(re.search(rf"\b{w}\b", text) for w in ("trousers", "pants", "red", "crimson"))


@pytest.mark.parametrize("name", ["cuhk-pedes", "synthpedes"])  # given the parent of CUHK-PEDES/
def test_load_dataset_reads_it(made, name):
    from tipr.data import load_dataset

    data = load_dataset(name, made["a"].parent)
    assert sorted({r.pid for r in data.train}) == [0, 1, 2, 3] and len(data.train) == 32
    assert len(data.train_image_paths) == 16 and data.val.num_images == 4 and data.test.num_captions == 8
    assert data.train[0].attributes["view"] in VIEWS


def test_bad_input_and_cli(tmp_path, capsys):
    with pytest.raises(ValueError, match="at least 3 identities"):
        generate_synthpedes(tmp_path, identities=2)
    main(["--out", str(tmp_path), "--identities", "3", "--images_per_identity", "1", "--image_size", "64x32"])
    assert re.search(r"train\s+1\s+1\s+2", capsys.readouterr().out)
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate_synthpedes(tmp_path, identities=3, image_size=(64, 32))
    generate_synthpedes(tmp_path, identities=4, image_size=(64, 32), images_per_identity=1, overwrite=True)
    assert len(list((tmp_path / "CUHK-PEDES" / "imgs" / "SynthPEDES").iterdir())) == 4
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--identities", "3", "--image_size", "64by32"])
