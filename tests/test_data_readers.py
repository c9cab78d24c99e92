import json
import os
import re
import warnings

import pytest
from PIL import Image

from tipr.data import AnnotationError, MissingImagesError, load_dataset

# name, folder, annotation file, image path field, json id of train pid 0, has a val split
FORMATS = {
    "cuhk-pedes": ("CUHK-PEDES", "reid_raw.json", "file_path", 1, True),
    "icfg-pedes": ("ICFG-PEDES", "ICFG-PEDES.json", "file_path", 0, False),
    "rstpreid": ("RSTPReid", "data_captions.json", "img_path", 0, True),
}


def annotations(name):
    """Six records as the public files ship them: train ids 0/1 (in json numbering), val 11, test 12 and 13."""
    _, _, field, first, has_val = FORMATS[name]
    rows = [("train", ["a man in a red shirt", "red shirt, black jeans"], "cam_a/0001.png", first),
            ("train", ["a woman with a bag"], "cam_a/0002.png", first + 1),
            ("train", ["the man in red again"], "cam_b/0003.png", first),
            ("val" if has_val else "test", ["val caption"], "val/0004.png", 11),
            ("test", ["test one", "test two"], "test/0005.png", 12),
            ("test", ["test three"], "test/0006.png", 13)]
    return [{"split": s, "captions": c, field: p, "id": i, "processed_tokens": [w.split() for w in c]}
            for s, c, p, i in rows]


def write_dataset(parent, name, records=None, text=None):
    folder, anno_file, field, _, _ = FORMATS[name]
    root = parent / folder
    records = annotations(name) if records is None else records
    for rec in records:
        path = root / "imgs" / rec.get(field, "unnamed.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 8), (200, 30, 30)).save(path)
    (root / anno_file).write_text(json.dumps(records) if text is None else text)
    return root


@pytest.mark.parametrize("name", FORMATS)
def test_reads_the_public_format(tmp_path, name):
    root = write_dataset(tmp_path, name)
    ds = load_dataset(name, root)
    imgs = os.path.join(str(root.absolute()), "imgs")
    assert [r.pid for r in ds.train] == [0, 0, 1, 0]
    assert [r.image_id for r in ds.train] == [0, 0, 1, 2]
    assert [r.caption for r in ds.train] == ["a man in a red shirt", "red shirt, black jeans",
                                             "a woman with a bag", "the man in red again"]
    assert [r.attributes for r in ds.train] == [None] * 4
    assert ds.train_image_paths == [os.path.join(imgs, "cam_a", "0001.png"), os.path.join(imgs, "cam_a", "0002.png"),
                                    os.path.join(imgs, "cam_b", "0003.png")]
    assert [r.image_path for r in ds.train] == [ds.train_image_paths[r.image_id] for r in ds.train]
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in ds.train_image_paths + ds.test.image_paths)
    if FORMATS[name][4]:
        assert not ds.val_is_test
        assert (ds.val.image_pids, ds.val.captions, ds.val.caption_pids) == ([11], ["val caption"], [11])
        assert ds.test.image_pids == [12, 13]
    else:  # ICFG-PEDES has no val split: val is the test split
        assert ds.val_is_test and ds.val is ds.test
        assert ds.test.image_pids == [11, 12, 13]
    assert ds.test.captions[-3:] == ["test one", "test two", "test three"]
    assert ds.test.caption_pids[-3:] == [12, 12, 13]
    assert ds.test.image_paths[-1] == os.path.join(imgs, "test", "0006.png")
    assert ds.num_train_pids == 2 and "4 captions" in ds.summary()


@pytest.mark.parametrize("name", FORMATS)
def test_root_may_be_the_folder_or_its_parent(tmp_path, name):
    root = write_dataset(tmp_path, name)
    assert load_dataset(name, tmp_path) == load_dataset(name, root)


@pytest.mark.parametrize("alias", ["CUHK-PEDES", "cuhk", "CUHK_PEDES", " cuhkpedes"])
def test_name_matching(tmp_path, alias):
    write_dataset(tmp_path, "cuhk-pedes")
    assert load_dataset(alias, tmp_path).name == "cuhk-pedes"


def test_icfg_accepts_the_underscore_spelling_of_its_readme(tmp_path):
    root = write_dataset(tmp_path, "icfg-pedes")
    (root / "ICFG-PEDES.json").rename(root / "ICFG_PEDES.json")
    assert len(load_dataset("icfg", tmp_path).train) == 4


def test_unknown_name_lists_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'market'.*cuhk-pedes, icfg-pedes, rstpreid"):
        load_dataset("market", tmp_path)


def test_attributes_field_is_kept(tmp_path):
    records = annotations("cuhk-pedes")
    records[1]["attributes"] = {"upper": "red"}
    ds = load_dataset("cuhk", write_dataset(tmp_path, "cuhk-pedes", records))
    assert [r.attributes for r in ds.train] == [None, None, {"upper": "red"}, None]


def test_missing_annotation_file_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("rstpreid", tmp_path)
    message = str(err.value)
    assert str(tmp_path / "data_captions.json") in message
    assert str(tmp_path / "RSTPReid" / "data_captions.json") in message
    assert "Download RSTPReid" in message


def test_malformed_json_gives_line_and_column(tmp_path):
    root = write_dataset(tmp_path, "cuhk-pedes", text='[{"split": "train",\n  oops}]')
    with pytest.raises(AnnotationError, match=r"reid_raw.json is not valid JSON: .* at line 2, column 3"):
        load_dataset("cuhk-pedes", root)


def _drop(field):
    return lambda rec: rec.pop(field)


@pytest.mark.parametrize("name, change, expected", [
    ("cuhk-pedes", _drop("captions"), "record 2 has no field 'captions'"),
    ("rstpreid", _drop("img_path"), "record 2 has no field 'img_path'"),
    ("icfg-pedes", _drop("id"), "record 2 has no field 'id'"),
    ("cuhk-pedes", lambda rec: rec.update(split="query"), "record 2 has split 'query'; expected one of 'train', 'val', 'test'"),
    ("cuhk-pedes", lambda rec: rec.update(captions="one caption"), "record 2 has 'captions' = 'one caption', expected a list"),
    ("cuhk-pedes", lambda rec: rec.update(id="seven"), "record 2 has 'id' = 'seven', expected an integer"),
])
def test_bad_record_names_index_and_field(tmp_path, name, change, expected):
    records = annotations(name)
    change(records[2])
    root = write_dataset(tmp_path, name, records)
    with pytest.raises(AnnotationError) as err:
        load_dataset(name, root)
    assert expected in str(err.value) and FORMATS[name][1] in str(err.value)


@pytest.mark.parametrize("name, ids, note", [
    ("cuhk-pedes", (0, 1), "0 to 1"),  # numbered from 0: another dataset's convention
    ("rstpreid", (7, 3), "3 to 7, none for e.g. [4, 5, 6]"),  # a filtered copy: gaps and a late start
    ("icfg-pedes", (40, 12), "12 to 40, none for e.g. [13, 14, 15, 16, 17]"),
])
def test_non_contiguous_train_ids_are_renumbered_with_a_warning(tmp_path, name, ids, note):
    records = annotations(name)
    for rec, new in zip(records[:3], (ids[0], ids[1], ids[0])):
        rec["id"] = new
    with pytest.warns(UserWarning, match=rf"2 train person ids \(json ids {re.escape(note)}\).*renumbered 0\.\.1"):
        ds = load_dataset(name, write_dataset(tmp_path, name, records))
    expected = [0, 0, 1, 0] if ids[0] < ids[1] else [1, 1, 0, 1]  # id order is kept
    assert [r.pid for r in ds.train] == expected
    assert ds.test.image_pids[-2:] == [12, 13]  # eval ids stay as they are


def test_a_person_whose_images_are_all_skipped_leaves_no_gap(tmp_path):
    records = annotations("rstpreid")
    records[2]["id"] = 2  # three train people: 0, 1, 2
    root = write_dataset(tmp_path, "rstpreid", records)
    (root / "imgs" / "cam_a" / "0002.png").unlink()  # person 1's only image
    with pytest.warns(UserWarning) as caught:
        ds = load_dataset("rstpreid", root, skip_missing_images=True)
    assert [r.pid for r in ds.train] == [0, 0, 1] and ds.num_train_pids == 2
    assert any("renumbered 0..1" in str(w.message) for w in caught)
    assert all(w.filename == __file__ for w in caught)  # the warnings point at the caller


def test_contiguous_ids_give_no_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset("rstpreid", write_dataset(tmp_path, "rstpreid"))


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("bad_path", ["../../../etc/passwd", "/etc/passwd", "cam_a/../../reid_raw.json"])
def test_image_paths_leaving_the_image_folder_are_refused(tmp_path, name, bad_path):
    records = annotations(name)
    root = write_dataset(tmp_path, name, records)
    records[4][FORMATS[name][2]] = bad_path
    (root / FORMATS[name][1]).write_text(json.dumps(records))
    with pytest.raises(AnnotationError) as err:
        load_dataset(name, root, skip_missing_images=True)
    message = str(err.value)
    assert f"record 4 has '{FORMATS[name][2]}' = '{bad_path}', which leaves the image folder" in message
    assert "relative to imgs/" in message


def test_eval_split_links_each_caption_to_its_image(tmp_path):
    ds = load_dataset("cuhk-pedes", write_dataset(tmp_path, "cuhk-pedes"))
    assert ds.test.captions == ["test one", "test two", "test three"] and ds.test.caption_images == [0, 0, 1]


def _caption_all(tmp_path, ids):
    """The original CUHK-PEDES release's caption_all.json: reid_raw.json's records without 'split'."""
    records = annotations("cuhk-pedes")
    for rec, new in zip(records, ids):
        rec["id"] = new
        del rec["split"]
    root = write_dataset(tmp_path, "cuhk-pedes", records)
    (root / "reid_raw.json").rename(root / "caption_all.json")
    return root


def test_caption_all_json_is_split_by_the_release_id_ranges(tmp_path):
    root = _caption_all(tmp_path, (1, 2, 1, 11004, 12004, 13003))
    ds = load_dataset("cuhk-pedes", tmp_path)
    assert [r.pid for r in ds.train] == [0, 0, 1, 0]
    assert (ds.val.image_pids, ds.test.image_pids, ds.val_is_test) == ([11004], [12004, 13003], False)
    assert ds.test.image_paths[0] == os.path.join(str(root.absolute()), "imgs", "test", "0005.png")
    (root / "reid_raw.json").write_text(json.dumps(annotations("cuhk-pedes")))  # both: reid_raw.json wins
    assert load_dataset("cuhk-pedes", root).test.image_pids == [12, 13]


@pytest.mark.parametrize("ids, message", [
    ((1, 2, 1, 3, 4, 5), "its ids run from 1 to 5, which leaves the val and test split empty"),
    ((1, 2, 1, 11004, 12004, 20000), "record 5 has 'id' = 20000, outside CUHK-PEDES's release id ranges"),
])
def test_caption_all_json_outside_the_release_ranges_says_what_to_do(tmp_path, ids, message):
    root = _caption_all(tmp_path, ids)
    with pytest.raises(AnnotationError) as err:
        load_dataset("cuhk-pedes", root)
    assert message in str(err.value) and "split" in str(err.value)


def test_missing_images_are_counted_and_named(tmp_path):
    root = write_dataset(tmp_path, "cuhk-pedes")
    gone = [root / "imgs" / "cam_a" / "0002.png", root / "imgs" / "test" / "0005.png"]
    for path in gone:
        path.unlink()
    with pytest.raises(MissingImagesError) as err:
        load_dataset("cuhk-pedes", root)
    assert "2 of 6 images listed in" in str(err.value) and str(gone[0]) in str(err.value)
    assert "skip_missing_images=True" in str(err.value)
    assert err.value.paths == [str(p) for p in gone]

    with pytest.warns(UserWarning, match="2 of 6 images"):
        ds = load_dataset("cuhk-pedes", root, skip_missing_images=True)
    assert [r.caption for r in ds.train] == ["a man in a red shirt", "red shirt, black jeans", "the man in red again"]
    assert [r.image_id for r in ds.train] == [0, 0, 1]
    assert ds.test.image_pids == [13] and ds.test.captions == ["test three"]
