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


# ------------------------------------------------------------------------------------------ real-shaped profiles
from tipr.data.synthetic_profiles import PROFILES  # noqa: E402

PROFILE_IDS = {"cuhk-pedes": 12, "icfg-pedes": 8, "rstpreid": 9}


@pytest.fixture(scope="module")
def shaped(tmp_path_factory):
    root = tmp_path_factory.mktemp("shaped")
    return {name: generate_synthpedes(root / name, identities=n, seed=3, image_size=(64, 32), workers=1,
                                      profile=name) for name, n in PROFILE_IDS.items()}


@pytest.mark.parametrize("name", PROFILES)
def test_profile_writes_the_release_files_and_the_reader_reads_them(shaped, name):
    from tipr.data import load_dataset

    prof = PROFILES[name]
    dataset = shaped[name]
    assert dataset.name == prof.folder
    records = json.loads((dataset / prof.annotation_file).read_text())
    assert all(list(r) == list(prof.fields) for r in records)  # the release's fields only: no attributes
    ids = {s: sorted({r["id"] for r in records if r["split"] == s}) for s in ("train", "val", "test")}
    sizes = prof.split_sizes(PROFILE_IDS[name])
    assert {s: len(v) for s, v in ids.items()} == sizes
    assert ids["train"][0] == prof.first_id and ids["train"] + ids["val"] + ids["test"] == list(
        range(prof.first_id, prof.first_id + PROFILE_IDS[name]))  # train ids first, as the releases number them
    formats = set()
    for r in records:
        with Image.open(dataset / "imgs" / r[prof.path_field]) as image:
            assert image.size == (32, 64)
            formats.add(image.format)
    data = load_dataset(name, dataset.parent)
    assert data.num_train_pids == sizes["train"] and sorted({r.pid for r in data.train}) == list(range(sizes["train"]))
    assert data.test.num_captions == sum(len(r["captions"]) for r in records if r["split"] == "test")
    assert data.val_is_test == (sizes["val"] == 0)
    assert formats == ({"PNG", "JPEG", "BMP"} if name == "cuhk-pedes" else {"JPEG"})


def test_each_profile_has_its_dataset_shape(shaped):
    def per_image(name):
        prof = PROFILES[name]
        return json.loads((shaped[name] / prof.annotation_file).read_text())

    cuhk = per_image("cuhk-pedes")
    assert {r["file_path"].split("/")[0] for r in cuhk} >= {"CUHK01", "CUHK03", "Market", "train_query"}
    assert {Path(r["file_path"]).suffix for r in cuhk} == {".png", ".jpg", ".bmp"}
    test = [r for r in cuhk if r["split"] == "test"]
    assert sorted(len(r["captions"]) for r in test)[-1] == 10  # the release's one test image with 10 captions
    images = {i: sum(r["id"] == i for r in test) for i in {r["id"] for r in test}}
    assert min(images.values()) == 1 and max(images.values()) > 1  # a person with one image, others with more
    assert all(r["processed_tokens"] == [tokens(c) for c in r["captions"]] for r in cuhk)

    icfg = per_image("icfg-pedes")
    assert {len(r["captions"]) for r in icfg} == {1} and {r["split"] for r in icfg} == {"train", "test"}
    assert all(re.fullmatch(rf"{r['split']}/{r['id']:04d}/{r['id']:04d}_\d{{3}}_\d\d_0303morning_\d{{4}}_0\.jpg",
                            r["file_path"]) for r in icfg)
    counts = [sum(r["id"] == i for r in icfg) for i in {r["id"] for r in icfg}]
    assert len(set(counts)) > 3  # widely spread

    rstp = per_image("rstpreid")
    assert {len(r["captions"]) for r in rstp} == {2}
    assert all(sum(r["id"] == i for r in rstp) == 5 for i in {r["id"] for r in rstp})
    assert all(re.fullmatch(rf"{r['id']:04d}_c\d+_\d{{4}}\.jpg", r["img_path"]) for r in rstp)


@pytest.mark.parametrize("name, train, test", [
    ("cuhk-pedes", 34054 / 11003, 3074 / 1000), ("icfg-pedes", 34674 / 3102, 19848 / 1000), ("rstpreid", 5, 5)])
def test_profile_plans_match_the_published_statistics(name, train, test):
    prof = PROFILES[name]
    people = prof.plan(3000, seed=0)
    sizes = {s: sum(p.split == s for p in people) for s in ("train", "val", "test")}
    share = {s: n / sum(prof.identities.values()) for s, n in prof.identities.items()}
    assert all(abs(sizes[s] / 3000 - share[s]) < 0.002 for s in sizes)
    for split, mean in (("train", train), ("test", test)):
        images = [p.images for p in people if p.split == split]
        assert np.mean(images) == pytest.approx(mean, rel=0.06)
    words = [w for p in people for image in p.words for w in image]
    assert np.mean(words) == pytest.approx(prof.words_mean, abs=0.5) and min(words) >= prof.words_min


@pytest.mark.parametrize("name", PROFILES)
def test_profile_captions_have_the_dataset_length_and_stay_true(name):
    prof = PROFILES[name]
    rng = np.random.default_rng(0)
    lengths = []
    for pid in range(1, 121):
        a = {**sample_identity(5, pid), "view": VIEWS[pid % 3], "occluded": "bottom" if pid % 4 == 0 else None}
        visible = visible_groups(a, a["view"], a["occluded"])
        targets = [prof._words(rng) for _ in range(prof.captions_per_image)]
        for caption in sc.caption_image(a, visible, rng, len(targets), targets):
            assert _problems(caption, a, visible) == [], caption
            lengths.append(len(caption.split()))
    assert np.mean(lengths) == pytest.approx(prof.words_mean, abs=3.0)


def test_icfg_profile_has_captions_beyond_the_text_context():
    import open_clip

    from tipr.data.text_context import long_captions

    prof = PROFILES["icfg-pedes"]
    rng = np.random.default_rng(1)
    captions = []
    for pid in range(1, 301):
        a = {**sample_identity(2, pid), "view": "front", "occluded": None}
        captions += sc.caption_image(a, visible_groups(a, "front"), rng, 1, [prof._words(rng)])
    found = long_captions(open_clip.get_tokenizer("ViT-B-16"), captions)
    assert 0 < found.count < 0.05 * len(captions) and found.longest > 80


def test_profile_bytes_do_not_depend_on_workers(tmp_path):
    a = generate_synthpedes(tmp_path / "a", identities=7, seed=1, image_size=(64, 32), workers=1, profile="cuhk-pedes")
    b = generate_synthpedes(tmp_path / "b", identities=7, seed=1, image_size=(64, 32), workers=2, profile="cuhk-pedes")
    assert _files(a) == _files(b)


def test_profile_cli_and_bad_input(tmp_path, capsys):
    main(["--out", str(tmp_path), "--identities", "5", "--profile", "rstpreid", "--image_size", "64x32",
          "--workers", "1"])
    out = capsys.readouterr().out
    assert re.search(r"test\s+2\s+10\s+20\s+5\.00 \(5-5\)\s+\d\d\.\d", out)
    assert re.search(r"captions beyond CLIP's 77 tokens: \d+ of \d+ distinct \(longest \d+ tokens\)", out)
    assert (tmp_path / "RSTPReid" / "data_captions.json").is_file()
    with pytest.raises(ValueError, match="needs at least 5 identities"):
        generate_synthpedes(tmp_path / "x", identities=4, profile="cuhk-pedes")
    with pytest.raises(ValueError, match="unknown profile 'market'"):
        generate_synthpedes(tmp_path / "x", identities=10, profile="market")
    (tmp_path / "y" / "ICFG-PEDES" / "imgs").mkdir(parents=True)
    (tmp_path / "y" / "ICFG-PEDES" / "imgs" / "mine.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="not written by SynthPEDES"):
        generate_synthpedes(tmp_path / "y", identities=5, profile="icfg-pedes")


def test_captions_do_not_depend_on_the_hash_seed():
    """Two interpreters with different PYTHONHASHSEED write the same captions (set order once drove the draws)."""
    import os
    import subprocess
    import sys

    code = ("import numpy as np; from tipr.data import synthetic_captions as sc; "
            "from tipr.data.synthetic import sample_identity, visible_groups\n"
            "rng = np.random.default_rng(0); out = []\n"
            "for pid in range(40):\n"
            "    a = {**sample_identity(0, pid), 'view': 'front', 'occluded': None}\n"
            "    out += sc.caption_image(a, visible_groups(a, 'front'), rng, 2, [20, 40])\n"
            "print('|'.join(out))")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")]
    assert runs[0] == runs[1] and runs[0].count("|") == 79
