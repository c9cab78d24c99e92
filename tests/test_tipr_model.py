"""load_model: local folders (with ~), and clear errors for a missing folder or a cut weights file."""

import pytest
import torch

from tipr.models.tipr_model import TIPRModel, load_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = TIPRModel(method="clip", backbone={"name": "tipr-tiny", "pretrained": None, "image_size": [64, 32]})
    folder = tmp_path_factory.mktemp("home") / "model"
    model.save_pretrained(folder)
    return folder, model.state_dict()


def test_load_model_expands_the_home_folder(saved, monkeypatch):
    folder, state = saved
    monkeypatch.setenv("HOME", str(folder.parent))
    loaded = load_model("~/model")
    assert loaded.method == "clip" and not loaded.training
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())


@pytest.mark.parametrize("damage, message", [("missing", "does not exist"), ("cut", "corrupt or cut short")])
def test_load_model_errors_name_the_problem(saved, tmp_path, damage, message):
    folder, _ = saved
    if damage == "missing":
        target = tmp_path / "nothing"
    else:
        target = tmp_path / "cut"
        target.mkdir()
        (target / "config.json").write_bytes((folder / "config.json").read_bytes())
        (target / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:100])
    with pytest.raises((FileNotFoundError, ValueError), match=message):
        load_model(target)
