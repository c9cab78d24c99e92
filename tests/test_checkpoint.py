"""checkpoint-N folders: atomic save, manifest check, refusal of damaged folders, pruning, 'latest'."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator

import tipr  # noqa: F401
from tipr.training.checkpoint import (CheckpointError, check_checkpoint, list_checkpoints, load_checkpoint,
                                      remove_stale_temporaries, resolve_checkpoint, save_checkpoint)


@pytest.fixture()
def setup():
    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    return accelerator, model, optimizer


def _step(model, optimizer):
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    optimizer.zero_grad()


def test_save_then_load_restores_weights_and_state(setup, tmp_path):
    accelerator, model, optimizer = setup
    _step(model, optimizer)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    path = save_checkpoint(accelerator, tmp_path, 7, {"global_step": 7, "epoch": 1})
    assert path == tmp_path / "checkpoint-7" and not list(tmp_path.glob(".checkpoint-*"))
    _step(model, optimizer)
    assert not torch.equal(model.weight, saved["weight"])
    state = load_checkpoint(accelerator, path)
    assert state == {"global_step": 7, "epoch": 1}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())


def test_total_limit_keeps_the_newest(setup, tmp_path):
    accelerator, model, optimizer = setup
    for step in (1, 2, 10, 11):
        save_checkpoint(accelerator, tmp_path, step, {"global_step": step}, total_limit=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-10", "checkpoint-11"]
    assert resolve_checkpoint("latest", tmp_path) == tmp_path / "checkpoint-11"  # numeric, not string order
    assert resolve_checkpoint("checkpoint-10", tmp_path) == tmp_path / "checkpoint-10"


@pytest.mark.parametrize("damage, words", [
    ("drop_manifest", "incomplete"),
    ("truncate", "bytes"),
    ("flip_byte", "sha256"),
    ("delete_file", "missing"),
    ("garble_manifest", "cannot be read"),
])
def test_damaged_checkpoints_are_refused_naming_the_folder(setup, tmp_path, damage, words):
    accelerator, model, optimizer = setup
    path = save_checkpoint(accelerator, tmp_path, 3, {"global_step": 3})
    weights = path / "model.safetensors"
    if damage == "drop_manifest":
        (path / "tipr_checkpoint.json").unlink()
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:-10])
    elif damage == "flip_byte":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "delete_file":
        weights.unlink()
    else:
        (path / "tipr_checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=words) as err:
        load_checkpoint(accelerator, path)
    assert str(path) in str(err.value)


def test_half_written_folders_are_never_resumed_and_get_cleaned(setup, tmp_path):
    accelerator, model, optimizer = setup
    assert resolve_checkpoint("latest", tmp_path) is None
    save_checkpoint(accelerator, tmp_path, 4, {"global_step": 4})
    (tmp_path / ".checkpoint-8.tmp").mkdir()  # a run killed while saving step 8
    assert resolve_checkpoint("latest", tmp_path) == tmp_path / "checkpoint-4"
    assert remove_stale_temporaries(tmp_path) == [tmp_path / ".checkpoint-8.tmp"]
    assert not (tmp_path / ".checkpoint-8.tmp").exists()
    with pytest.raises(CheckpointError, match="does not exist"):
        check_checkpoint(tmp_path / "checkpoint-99")


def test_saving_the_same_step_again_replaces_it(setup, tmp_path):
    accelerator, model, optimizer = setup
    save_checkpoint(accelerator, tmp_path, 5, {"global_step": 5, "note": "first"})
    _step(model, optimizer)
    save_checkpoint(accelerator, tmp_path, 5, {"global_step": 5, "note": "second"})
    assert check_checkpoint(tmp_path / "checkpoint-5")["state"]["note"] == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-5"]
