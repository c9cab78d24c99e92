"""Weight files in either layout (one model.safetensors, or the Hub's shards + index): save, load, errors."""

import fnmatch
import json
import shutil

import huggingface_hub
import pytest
import torch

from tipr.models.tipr_model import TIPRModel, load_model
from tipr.models.weights import INDEX_FILE, SINGLE_FILE, has_weights, read_weights, weight_files

SHARD = 2 * 2**20  # bytes; the tiny CLIP's 12 MiB token embedding still gets a shard of its own
LAYOUTS = {"single": {}, "sharded": {"max_shard_size": SHARD}}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TIPRModel(method="ecca+gea", backbone={"name": "tipr-tiny", "pretrained": None, "image_size": [64, 32]})


@pytest.fixture(scope="module")
def folders(model, tmp_path_factory):
    """The model saved in each layout."""
    root = tmp_path_factory.mktemp("weights")
    for layout, kwargs in LAYOUTS.items():
        model.save_pretrained(root / layout, **kwargs)
    return {layout: root / layout for layout in LAYOUTS}


@pytest.fixture(scope="module")
def inputs(model):
    torch.manual_seed(1)
    return model.tokenize(["a man in a red coat", "a woman with a black bag"]), torch.randn(2, 3, 64, 32)


def test_sharded_save_splits_below_the_size_and_indexes_every_tensor(model, folders):
    folder = folders["sharded"]
    index = json.loads((folder / INDEX_FILE).read_text())["weight_map"]
    files = weight_files(folder)
    assert not (folder / SINGLE_FILE).exists() and len(files) >= 4
    assert set(index) == set(model.state_dict()) and {p.name for p in files} == set(index.values())
    for path in files:
        tensors = [k for k, name in index.items() if name == path.name]
        assert path.stat().st_size <= SHARD + 2**14 or len(tensors) == 1, path.name  # + its JSON header
    assert {v.dtype for v in read_weights(folder).values()} == {torch.float32}


def test_default_save_is_one_file(folders):
    assert [p.name for p in weight_files(folders["single"])] == [SINGLE_FILE]
    assert not (folders["single"] / INDEX_FILE).exists()


@pytest.mark.parametrize("first, second", [("sharded", "single"), ("single", "sharded")])
def test_saving_again_leaves_no_file_of_the_other_layout(model, tmp_path, first, second):
    model.save_pretrained(tmp_path, **LAYOUTS[first])
    model.save_pretrained(tmp_path, **LAYOUTS[second])
    weights = sorted(p.name for p in tmp_path.glob("model*"))
    assert weights == sorted([p.name for p in weight_files(tmp_path)] + ([INDEX_FILE] if second == "sharded" else []))


def _same_features(loaded, model, inputs):
    ids, images = inputs
    with torch.no_grad():
        return (torch.equal(loaded.encode_texts(ids), model.eval().encode_texts(ids))
                and torch.equal(loaded.encode_images(images), model.encode_images(images)))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_load_model_gives_the_same_features(model, folders, inputs, layout):
    loaded = load_model(folders[layout])
    assert next(loaded.parameters()).dtype == torch.float32
    assert _same_features(loaded, model, inputs)


@pytest.fixture
def hub_cache(monkeypatch, tmp_path):
    """An offline Hub cache (HF_HUB_CACHE layout) that a test fills with a repo's snapshot."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    def put(repo_id: str, folder) -> None:
        repo = tmp_path / "hub" / f"models--{repo_id.replace('/', '--')}"
        commit = "0" * 40
        shutil.copytree(folder, repo / "snapshots" / commit)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(commit)

    return put


@pytest.mark.parametrize("layout", LAYOUTS)
def test_load_model_from_a_hub_id(model, folders, inputs, hub_cache, layout):
    hub_cache("someone/tipr-tiny", folders[layout])
    assert _same_features(load_model("someone/tipr-tiny"), model, inputs)


@pytest.mark.parametrize("cached", [[], ["config.json"], ["config.json", "a shard"]])
def test_uncached_hub_id_fails_fast_offline(folders, hub_cache, tmp_path, cached):
    import time

    from tipr.hub import HubUnreachableError

    partial = tmp_path / "partial"
    partial.mkdir()
    for name in cached:  # a shard without the index that names it
        source = weight_files(folders["sharded"])[0] if name == "a shard" else folders["sharded"] / name
        shutil.copy(source, partial / source.name)
    hub_cache("someone/uncached", partial)
    start = time.perf_counter()
    with pytest.raises(HubUnreachableError, match="HF_HUB_OFFLINE.*local model folder"):
        load_model("someone/uncached")
    assert time.perf_counter() - start < 10


def test_hub_id_with_a_missing_shard_names_it(folders, hub_cache, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(folders["sharded"], partial)
    lost = weight_files(partial)[-1]
    lost.unlink()
    hub_cache("someone/partial", partial)
    with pytest.raises(FileNotFoundError, match=f"lacks {lost.name}.*every shard"):
        load_model("someone/partial")


@pytest.mark.parametrize("damage, error, message", [
    ("missing", FileNotFoundError, r"lacks model-\d{5}-of-\d{5}\.safetensors, named by model\.safetensors\.index"),
    ("cut", ValueError, "corrupt or cut short"),
    ("no weights", FileNotFoundError, "holds no model weights"),
])
def test_damaged_sharded_folder_errors(folders, tmp_path, damage, error, message):
    folder = tmp_path / "model"
    shutil.copytree(folders["sharded"], folder)
    shard = weight_files(folder)[0]
    if damage == "missing":
        shard.unlink()
    elif damage == "cut":
        shard.write_bytes(shard.read_bytes()[:100])
    else:
        (folder / INDEX_FILE).unlink()
    with pytest.raises(error, match=message):
        load_model(folder)
    assert has_weights(folder) == (damage != "no weights")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_best_model_restores_either_layout(model, folders, layout):
    from tipr.training.best_model import MARKER, BestModel

    best = BestModel(folders[layout])
    best.update(model, {"R1": 1.0}, epoch=1, step=5, save=False)
    (folders[layout] / MARKER).write_text(json.dumps({"step": 5}))
    fresh = TIPRModel(method="ecca+gea", backbone={"name": "tipr-tiny", "pretrained": None, "image_size": [64, 32]})
    assert best.restore(fresh, final_step=9)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_either_layout_is_a_tipr_model_folder_and_is_uploaded(folders, layout):
    from tipr.generation.tiny_pipeline import is_tipr_model_folder
    from tipr.training.hub_push import MODEL_FILES

    assert is_tipr_model_folder(folders[layout])
    names = [p.name for p in folders[layout].iterdir() if p.name.startswith("model")]
    assert names and all(any(fnmatch.fnmatch(n, pattern) for pattern in MODEL_FILES) for n in names)


def test_push_names_a_missing_shard_before_trying_the_hub(folders, tmp_path):
    from tipr.training.hub_push import push_folder

    folder = tmp_path / "model"
    shutil.copytree(folders["sharded"], folder)
    weight_files(folder)[0].unlink()
    with pytest.raises(FileNotFoundError, match="every shard"):
        push_folder(folder, "someone/tipr-test")
