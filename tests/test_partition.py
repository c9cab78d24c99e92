import json

import numpy as np
import pytest

from tipr.data import SETTINGS, Modality, Partition, partition_pairs


@pytest.mark.parametrize("setting, n, counts", [
    ("full", 10, (10, 0, 0)),
    ("easy", 1000, (500, 250, 250)),
    ("medium", 1000, (300, 350, 350)),
    ("hard", 1000, (100, 450, 450)),
    ("medium", 7, (2, 3, 2)),  # 2.1 / 2.45 / 2.45: the one left over goes to the largest remainder
    ("HARD", 3, (0, 2, 1)),
    ((0.2, 0.3, 0.5), 10, (2, 3, 5)),
    ("easy", 0, (0, 0, 0)),
])
def test_exact_counts(setting, n, counts):
    partition = partition_pairs(n, setting, seed=3)
    assert partition.modes.dtype == np.int8 and partition.num_pairs == n
    assert tuple(partition.counts().values()) == counts
    assert partition.setting == (setting.lower() if isinstance(setting, str) else "custom")


def test_settings_and_modes():
    assert SETTINGS["medium"] == (0.3, 0.35, 0.35)
    assert [int(m) for m in Modality] == [0, 1, 2]
    assert Modality.IMAGE_MISSING.name == "IMAGE_MISSING"


def test_deterministic_under_the_seed():
    a, b, c = (partition_pairs(500, "medium", seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.modes, b.modes)
    assert not np.array_equal(a.modes, c.modes)
    assert partition_pairs(5, "hard", seed=0).modes.tolist() == partition_pairs(5, "hard").modes.tolist()
    np.testing.assert_array_equal(a.indices(Modality.COMPLETE), np.flatnonzero(a.modes == 0))


@pytest.mark.parametrize("setting, message", [
    ((0.5, 0.5, 0.5), "sum to 1.5, not 1"),
    ((0.5, 0.5), "three numbers"),
    ((1.2, -0.1, -0.1), "three numbers in"),
    ("extreme", "unknown partition setting 'extreme'; use one of full, easy, medium, hard"),
])
def test_bad_settings(setting, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        partition_pairs(10, setting)


def test_manifest_round_trip(tmp_path):
    path = tmp_path / "medium.json"
    partition = partition_pairs(41, "medium", seed=5)
    partition.save(path)
    manifest = json.loads(path.read_text())
    assert {k: manifest[k] for k in ("setting", "ratios", "seed", "num_pairs")} == {
        "setting": "medium", "ratios": [0.3, 0.35, 0.35], "seed": 5, "num_pairs": 41}
    assert manifest["counts"] == {"COMPLETE": 12, "IMAGE_MISSING": 15, "TEXT_MISSING": 14}
    loaded = Partition.load(path, num_pairs=41)
    assert (loaded.setting, loaded.ratios, loaded.seed) == ("medium", (0.3, 0.35, 0.35), 5)
    np.testing.assert_array_equal(loaded.modes, partition.modes)
    assert loaded.modes.dtype == np.int8


def test_manifest_for_another_dataset_is_refused(tmp_path):
    path = tmp_path / "p.json"
    partition_pairs(41, "hard").save(path)
    with pytest.raises(ValueError, match=r"p.json covers 41 train pairs but the dataset has 40.*partition_pairs\(40"):
        Partition.load(path, num_pairs=40)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["modes"].__setitem__(0, 3), "'modes' must be a list of 0"),
    (lambda m: m.update(num_pairs=40), "says num_pairs=40 but lists 41 modes"),
    (lambda m: m.pop("seed"), "lacks seed"),
    (lambda m: m.update(ratios=[0.5, 0.5, 0.5]), "sum to 1.5"),
])
def test_corrupt_manifest(tmp_path, edit, message):
    path = tmp_path / "p.json"
    partition_pairs(41, "hard").save(path)
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=message):
        Partition.load(path)


@pytest.mark.parametrize("setting", ["easy", "medium", "hard"])
def test_grouped_partition_gives_every_pair_of_an_image_one_mode(setting):
    groups = np.repeat(np.arange(100), 2)  # two captions per image, as in CUHK-PEDES
    part = partition_pairs(len(groups), setting, seed=3, groups=groups)
    per_image = part.modes.reshape(100, 2)
    assert (per_image[:, 0] == per_image[:, 1]).all()
    expected = [round(r * 100) * 2 for r in SETTINGS[setting]]
    assert [part.counts()[m] for m in Modality] == expected


def test_grouped_partition_rejects_wrong_length():
    with pytest.raises(ValueError, match="one group id per pair"):
        partition_pairs(4, "easy", groups=[0, 1])
