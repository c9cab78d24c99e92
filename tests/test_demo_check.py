"""The demo's figures (tipr.app.demo_queries, tipr.app.demo_check, benchmarks/demo_check.py): values on small
hand-made galleries, and the script end to end on a tiny SynthPEDES gallery with a random model."""

import json
import math
import runpy
from pathlib import Path

import pytest

from tipr.app.demo_check import CaptionRanking, NeighbourLikeness, report
from tipr.attribute_oracle import agreement
from tipr.app.demo_queries import DemoQuery, QueriesError, micro_average, read_queries, score_queries, shows

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "demo_check.py"
ALL = ["gender", "upper", "lower", "bag", "hair", "glasses", "pattern", "shoes"]
# five people, irregular: two red coats, one of them with glasses seen from behind
IMAGES = [
    {"gender": "female", "upper_type": "coat", "upper_colour": "red", "bag_type": "backpack", "glasses": True,
     "visible": ALL},
    {"gender": "female", "upper_type": "coat", "upper_colour": "red", "bag_type": "none", "glasses": True,
     "visible": [g for g in ALL if g != "glasses"]},
    {"gender": "male", "upper_type": "jacket", "upper_colour": "red", "bag_type": "backpack", "glasses": False,
     "visible": ALL},
    {"gender": "male", "upper_type": "coat", "upper_colour": "blue", "bag_type": "none", "glasses": False,
     "visible": ALL},
    {"gender": "female", "upper_type": "shirt", "upper_colour": "white", "bag_type": "handbag", "glasses": False,
     "visible": ALL},
]
RED_COAT = DemoQuery("lady in a red coat", {"gender": "female", "upper_colour": "red", "upper_type": "coat"})
GLASSES = DemoQuery("woman w/ glasses", {"gender": "female", "glasses": True})
PURPLE = DemoQuery("purple hat", {"headwear": "hat", "headwear_colour": "purple"})


@pytest.mark.parametrize("image, key, value, expected", [
    (0, "glasses", True, True), (1, "glasses", True, False),  # recorded, but not visible from behind
    (2, "upper_colour", "red", True), (3, "upper_colour", "red", False), (4, "headwear", "hat", False)])
def test_an_image_shows_an_attribute_recorded_and_visible(image, key, value, expected):
    assert shows(IMAGES[image], key, value) is expected


def test_a_perfect_ranker_shows_every_attribute_and_chance_is_the_gallery_share():
    scores = score_queries([RED_COAT, GLASSES], [[0, 1], [0]], IMAGES)
    red, glasses = scores
    assert (red.matches, red.top_share, red.top_all) == (2, 1.0, 1.0)
    # chance: female 3/5, red 3/5, coat 3/5; glasses shown by image 0 only
    assert [a.chance for a in red.attributes] == [0.6, 0.6, 0.6]
    assert [a.chance for a in glasses.attributes] == [0.6, 0.2] and glasses.chance == pytest.approx(0.4)
    assert micro_average(scores) == (1.0, pytest.approx((0.6 * 4 + 0.2) / 5))


def test_a_mixed_top_k_scores_each_attribute_on_its_own():
    (red,) = score_queries([RED_COAT], [[2, 3, 0, 4]], IMAGES)  # red jacket man, blue coat man, the match, shirt
    assert [a.top_share for a in red.attributes] == [0.5, 0.5, 0.5]  # female: 0, 4; red: 2, 0; coat: 3, 0
    assert (red.matches, red.top_all) == (2, 0.25)


def test_an_attribute_no_image_shows_is_reported_not_divided_by():
    (purple,) = score_queries([PURPLE], [[0, 1, 2]], IMAGES)
    assert (purple.matches, purple.top_share, purple.chance) == (0, 0.0, 0.0)
    ranking = CaptionRanking(dict.fromkeys(("R1", "R5", "mAP", "mINP"), 1.0),
                             dict.fromkeys(("R1", "R5", "mAP", "mINP"), 2.0), 10, 2)
    text = report(ranking, [purple], NeighbourLikeness(1, 4, 0.5, 0.25, 0.3, 0.1), k=3)
    assert "No gallery image shows: “purple hat” (headwear = hat); “purple hat” (headwear_colour = purple)" in text


@pytest.mark.parametrize("model, oracle, ratio", [(6.0, 9.0, 2 / 3), (45.0, 50.0, 0.9), (1.0, 0.0, math.nan)])
def test_model_over_oracle(model, oracle, ratio):
    ranking = CaptionRanking({"R1": model}, {"R1": oracle}, 4, 0)
    assert ranking.ratio("R1") == pytest.approx(ratio, nan_ok=True)


@pytest.mark.parametrize("a, b, expected", [(0, 0, 1.0), (0, 1, 14 / 15), (0, 4, 11 / 15), (2, 3, 12 / 15)])
def test_agreement_is_the_share_of_looks_alike(a, b, expected):
    # LOOKS has 15 keys; the fixtures record 5 of them, the other 10 agree (both absent); visibility is not read
    assert agreement(IMAGES[a], IMAGES[b]) == pytest.approx(expected)


@pytest.mark.parametrize("content, message", [
    ({"format": "other", "queries": []}, "not a demo queries file"),
    ({"format": "tipr-demo-queries/1", "queries": [{"query": "x"}]}, "entry 0 needs"),
    ({"format": "tipr-demo-queries/1", "queries": [{"query": "hoodie", "attributes": {"hoodie": "red"}}]},
     r"unknown attributes \['hoodie'\]"),
    ({"format": "tipr-demo-queries/1", "queries": []}, "holds no queries")])
def test_bad_queries_files_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "q.json"
    path.write_text(json.dumps(content))
    with pytest.raises(QueriesError, match=message):
        read_queries(path)


def test_the_demo_queries_each_match_the_demo_gallery():
    queries = read_queries(REPO / "benchmarks" / "data" / "demo_queries.json")
    gallery = json.loads((REPO / "assets" / "gallery" / "captions.json").read_text())
    images = [e["attributes"] for e in gallery["images"]]
    scores = score_queries(queries, [[0]] * len(queries), images)
    assert len(queries) >= 36 and len({q.query for q in queries}) == len(queries)
    assert min(s.matches for s in scores) >= 3, [(s.query.query, s.matches) for s in scores if s.matches < 3]


def test_a_subset_of_a_gallery_keeps_each_image_s_attributes():
    from tipr.app.gallery_source import GallerySource, subset

    source = GallerySource(root=Path("/g"), kind="captions file", image_paths=["/g/a", "/g/b", "/g/c"],
                           image_pids=[1, 2, 3], attributes={0: IMAGES[0], 2: IMAGES[2]})
    assert subset(source, [2, 1]).attributes == {0: IMAGES[2]}


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    """A random model and a SynthPEDES gallery of 3 people x 3 images (one caption each), 3 of them captionless."""
    from tipr.app.gallery_export import write_gallery
    from tipr.app.testing import build_random_model
    from tipr.data.synthetic import generate_synthpedes

    out = tmp_path_factory.mktemp("demo")
    data = generate_synthpedes(out / "synth", identities=31, images_per_identity=3, captions_per_image=1,
                               image_size=(64, 32), workers=1)
    gallery = write_gallery(data, out / "gallery", captionless=0.34, seed=1)
    queries = out / "queries.json"
    queries.write_text(json.dumps({"format": "tipr-demo-queries/1", "queries": [
        {"query": "a person in a coat", "attributes": {"upper_type": "coat"}},
        {"query": "someone with a purple hat", "attributes": {"headwear": "hat", "headwear_colour": "purple"}}]}))
    return {"model": build_random_model(out / "model", image_size=(64, 32)), "gallery": gallery,
            "queries": queries, "cache": out / "cache", "out": out}


def test_the_script_writes_the_three_measures(tiny_demo, capsys):
    out = tiny_demo["out"] / "demo.md"
    argv = ["--model", str(tiny_demo["model"]), "--gallery", str(tiny_demo["gallery"]), "--queries",
            str(tiny_demo["queries"]), "--cache_dir", str(tiny_demo["cache"]), "--top", "3", "--out", str(out)]
    runpy.run_path(str(SCRIPT), run_name="demo_check").get("main")(argv)
    text = out.read_text()
    assert text.startswith("<!-- written by python benchmarks/demo_check.py --model ")
    assert text in capsys.readouterr().out
    assert "9 captions (3 of them held out, of the captionless images) rank every gallery image" in text
    assert "| attribute oracle |" in text and "2 queries naming 3 attributes in all" in text
    assert "For each of the 3 captionless images" in text and "| HSNG neighbours |" in text


def test_a_gallery_without_attributes_is_refused_with_the_fix(tiny_demo, tmp_path, capsys):
    import shutil

    gallery = shutil.copytree(tiny_demo["gallery"], tmp_path / "gallery")
    data = json.loads((gallery / "captions.json").read_text())
    assert all("attributes" in e for e in data["images"])  # write_gallery recorded them
    for entry in data["images"][:2]:
        del entry["attributes"]
    (gallery / "captions.json").write_text(json.dumps(data))
    argv = ["--model", str(tiny_demo["model"]), "--gallery", str(gallery), "--queries", str(tiny_demo["queries"]),
            "--cache_dir", str(tmp_path / "cache")]
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(SCRIPT), run_name="demo_check").get("main")(argv)
    assert exit_.value.code == 2
    assert "records no true attributes for 2 of its 9 images" in capsys.readouterr().err
