"""The trainer's units: ECCA's bank schedule and coverage, the resume rules, the best model, optimiser groups."""

import json

import pytest
import torch
from torch import nn

import tipr  # noqa: F401
from tipr.data.partition import Modality
from tipr.models.tipr_model import TIPRModel
from tipr.training.bank_refresh import BankSchedule, coverage_report
from tipr.training.best_model import MARKER, BestModel
from tipr.training.checkpoint import remove_stale_temporaries
from tipr.training.optim import default_warmup_steps, param_groups
from tipr.training.state import TrainingState

TINY = {"name": "tipr-tiny", "pretrained": None, "image_size": [64, 32]}


@pytest.mark.parametrize("every, start, mid_epoch, rebuilt, exact", [
    (1, 0, False, [0, 1, 2, 3, 4, 5], [True] * 6),           # a fresh run, rebuilt every epoch
    (2, 0, False, [0, 2, 4], [True] * 3),                     # every other epoch
    (3, 0, False, [0, 3], [True, True]),
    (2, 3, False, [3, 4], [False, True]),                     # resumed at the start of epoch 3, inside a period
    (2, 2, True, [2, 4], [False, True]),                      # resumed in the middle of epoch 2
    (2, 4, False, [4], [True]),                               # resumed exactly where a period starts
])
def test_bank_schedule(every, start, mid_epoch, rebuilt, exact):
    schedule, seen, was_exact = BankSchedule(every), [], []
    for epoch in range(start, 6):
        if schedule.due(epoch):
            seen.append(epoch)
            was_exact.append(schedule.exact(epoch, resumed_mid_epoch=mid_epoch and epoch == start))
            schedule.mark(epoch)
    assert seen == rebuilt and was_exact == exact


def test_bank_schedule_refuses_a_zero_period():
    with pytest.raises(ValueError, match=">= 1 epoch"):
        BankSchedule(0)


def test_coverage_report_counts_missing_and_repeated_indices():
    report = coverage_report(torch.tensor([1, 0, 2, 1, 0, 3, 1]))
    assert report == {"total": 7, "covered_once": 3, "missing": 2, "repeated": 2, "examples_missing": [1, 4],
                      "examples_repeated": [2, 5]}
    many = coverage_report(torch.zeros(25, dtype=torch.long))
    assert many["missing"] == 25 and many["examples_missing"] == list(range(10))


@pytest.mark.parametrize("batches_done, per_epoch, point", [(3, 6, (2, 3)), (6, 6, (3, 0)), (0, 6, (2, 0)),
                                                            (7, 6, (3, 0))])
def test_resume_point(batches_done, per_epoch, point):
    assert TrainingState(epoch=2, batches_done=batches_done).resume_point(per_epoch) == point


def test_training_state_round_trips_through_json_and_names_changed_batch_settings():
    saved = TrainingState(global_step=7, epoch=1, batches_done=2, best={"R1": 3.0}, world_size=2, train_batch_size=16,
                          gradient_accumulation_steps=1, seed=3, method="ecca")
    loaded = TrainingState.from_dict(json.loads(json.dumps(saved.to_dict())) | {"from_a_newer_version": 1})
    assert loaded == saved
    now = TrainingState(world_size=1, train_batch_size=16, gradient_accumulation_steps=4)
    assert saved.batch_changes(now) == ["world_size was 2 and is now 1",
                                        "gradient_accumulation_steps was 1 and is now 4"]
    assert saved.batch_changes(saved) == []


def test_best_model_is_written_through_a_temporary_folder_and_restored(tmp_path):
    torch.manual_seed(0)
    model = TIPRModel(method="clip", backbone=TINY)
    best = BestModel(tmp_path / "best")
    assert best.update(model, {"R1": 10.0}, epoch=1, step=5, save=True)
    first = {k: v.clone() for k, v in model.state_dict().items()}
    assert json.loads((tmp_path / "best" / MARKER).read_text()) == {"step": 5}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert not best.update(model, {"R1": 10.0}, epoch=2, step=9, save=True)  # a tie is no improvement
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]  # no temporary folder left
    assert best.restore(model, final_step=9)
    assert all(torch.equal(model.state_dict()[k], first[k]) for k in first)
    assert not best.restore(model, final_step=5)  # the final model is the best one
    restored = BestModel(tmp_path / "best")
    restored.load_state_dict(json.loads(json.dumps(best.state_dict())))
    assert (restored.score, restored.epoch, restored.step) == (10.0, 1, 5)


def test_best_model_folder_from_another_run_is_not_restored(tmp_path):
    model = TIPRModel(method="clip", backbone=TINY)
    best = BestModel(tmp_path / "best")
    best.update(model, {"R1": 1.0}, epoch=1, step=3, save=True)
    (tmp_path / "best" / MARKER).write_text(json.dumps({"step": 99}))
    assert not best.restore(model, final_step=8)


def test_stale_temporaries_of_checkpoints_and_best_are_swept(tmp_path):
    for name in (".checkpoint-4.tmp", ".best.tmp", ".best.old", "checkpoint-2", "best", ".cache"):
        (tmp_path / name).mkdir()
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == [".best.old", ".best.tmp", ".checkpoint-4.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cache", "best", "checkpoint-2"]


def test_param_groups_give_the_heads_their_own_learning_rate():
    backbone, head = nn.Linear(3, 3), nn.Linear(3, 1)
    module = nn.ModuleDict({"backbone": backbone, "head": head})
    groups = param_groups(module, backbone, lr=1e-4, head_lr_scale=10.0)
    assert [len(g["params"]) for g in groups] == [2, 2] and groups[1]["lr"] == pytest.approx(1e-3)
    assert "lr" not in groups[0]
    assert len(param_groups(backbone, backbone, lr=1e-4, head_lr_scale=10.0)) == 1  # no heads: one group


@pytest.mark.parametrize("per_epoch, total, warmup", [(100, 6000, 500), (10, 100, 10), (3, 5, 0)])
def test_default_warmup_steps(per_epoch, total, warmup):
    assert default_warmup_steps(per_epoch, total) == warmup


@pytest.mark.parametrize("incomplete, expected", [(False, ["a", None, None, "d"]), (True, ["a", "b", None, "d"])])
def test_generation_captions_skip_pairs_that_need_no_image(incomplete, expected):
    from types import SimpleNamespace

    from tipr.training.data import generation_captions

    records = [SimpleNamespace(caption=c) for c in "abcd"]
    dataset = SimpleNamespace(train=records, val=SimpleNamespace(captions=["v"]), test=SimpleNamespace(captions=[]))
    modes = [Modality.COMPLETE, Modality.IMAGE_MISSING, Modality.TEXT_MISSING, Modality.COMPLETE]
    captions = generation_captions(dataset, SimpleNamespace(modes=modes), uses_incomplete_pairs=incomplete)
    assert captions == {"train": expected, "val": ["v"], "test": []}
