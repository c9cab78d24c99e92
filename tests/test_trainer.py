"""train/run.py on a tiny SynthPEDES: every method trains, resuming is exact, checkpoints are checked, the saved
folder loads, the Hub upload fails fast offline, and two CPU processes train in sync."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import tipr  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
BASE = ["--preset", "tiny", "--dataset", "synthpedes", "--image_size", "64x32", "--train_batch_size", "8",
        "--cpu", "--report_to", "none", "--eval_batch_size", "16"]


@pytest.fixture(scope="session")
def generator(tmp_path_factory, synth) -> tuple[str, str]:
    """tipr's tiny pipeline (random weights) and a cache already holding an image for every caption."""
    from PIL import Image

    from tipr.data import load_dataset
    from tipr.generation import GenerationCache, load_generator
    from tipr.generation.tiny_pipeline import TiprTinyText2ImagePipeline

    root = tmp_path_factory.mktemp("gea")
    TiprTinyText2ImagePipeline.from_scratch(seed=0).save_pretrained(root / "pipe")
    pipe = load_generator(root / "pipe")
    cache = GenerationCache(root / "cache")
    data = load_dataset("synthpedes", synth)
    for caption in {r.caption for r in data.train} | set(data.val.captions) | set(data.test.captions):
        shade = hashlib.sha256(caption.encode()).digest()[:3]
        cache.put(pipe.cache_key(caption), Image.new("RGB", (32, 64), tuple(shade)))
    return str(root / "pipe"), str(root / "cache")


def _argv(method: str, synth: str, out: Path, *extra: str, generator=None) -> list[str]:
    argv = BASE + ["--method", method, "--data_root", synth, "--output_dir", str(out), *extra]
    if generator is not None and "gea" in method:
        argv += ["--generator", generator[0], "--generation_cache", generator[1]]
    return argv


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


# ------------------------------------------------------------------------------------------------ options
def test_config_file_then_command_line_win(tmp_path):
    from tipr.training.args import parse_args

    cfg = tmp_path / "run.yaml"
    cfg.write_text("method: ecca\ndataset: cuhk-pedes\ndata_root: /data\nk: 5\nlearning_rate: 0.001\n"
                   "image_size: 64x32\npreset: tiny\nuse_hsng: false\n")
    args = parse_args(["--config", str(cfg), "--learning_rate", "0.002", "--k_prime", "3"])
    assert (args.method, args.k, args.k_prime, args.learning_rate) == ("ecca", 5, 3, 0.002)
    assert args.image_size == (64, 32) and args.model_name == "tipr-tiny" and args.pretrained is None
    assert args.use_hsng is False and args.supervised is False
    from tipr.training.args import ecca_config

    assert (ecca_config(args).k, ecca_config(args).use_hsng, ecca_config(args).num_prototypes_s) == (5, False, 64)


@pytest.mark.parametrize("argv, message", [
    (["--method", "ecca", "--dataset", "x", "--data_root", "y", "--supervised"], "without identity labels"),
    (["--method", "ecca", "--dataset", "x", "--data_root", "y", "--k", "3", "--k_prime", "4"], "k_prime"),
    (["--method", "gea", "--dataset", "x"], "--data_root"),
    (["--method", "gea", "--dataset", "x", "--data_root", "y", "--push_to_hub"], "--hub_model_id"),
    (["--method", "clip", "--dataset", "x", "--data_root", "y", "--oracle_neighbours"], "ecca or ecca+gea"),
    (["--method", "ecca", "--dataset", "x", "--data_root", "y", "--oracle_neighbours", "--push_to_hub",
      "--hub_model_id", "a/b"], "not ECCA"),
])
def test_bad_options_are_refused(argv, message, capsys):
    from tipr.training.args import parse_args

    with pytest.raises(SystemExit):
        parse_args(argv)
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("method, setting", [("clip", "full"), ("ecca", "medium"), ("gea", "full"),
                                             ("ecca+gea", "easy")])
def test_each_method_trains_and_saves_a_loadable_model(run, synth, generator, tmp_path, method, setting):
    from accelerate.utils import set_seed

    from tipr.models.tipr_model import TIPRModel, load_model
    from tipr.training.args import model_kwargs, parse_args

    out = tmp_path / "out"
    argv = _argv(method, synth, out, "--setting", setting, "--max_train_steps", "2", generator=generator)
    if method == "clip":
        argv += ["--report_to", "tensorboard"]
    results = run.main(argv)
    if method == "clip":
        assert list((out / "logs").rglob("events.out.tfevents.*")), "no TensorBoard log"
    assert set(results["test"]) == {"R1", "R5", "R10", "mAP", "mINP"}
    model = load_model(out)
    assert model.method == method
    set_seed(0)
    initial = TIPRModel(**model_kwargs(parse_args(argv))).state_dict()
    trained = _weights(out)
    assert set(trained) == set(initial)
    assert any(not torch.equal(trained[k], initial[k]) for k in trained), "no parameter changed in training"
    assert all(torch.isfinite(v).all() for v in trained.values())
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: tipr\n") and "| test |" in card and method in card
    summary = json.loads((out / "results.json").read_text())
    assert summary["global_step"] == 2 and summary["results"]["test"] == results["test"]
    if "ecca" in method:
        coverage = json.loads((out / "bank_coverage.json").read_text())
        assert coverage["images"]["covered_once"] == coverage["images"]["total"] == 24
        assert coverage["texts"]["covered_once"] == coverage["texts"]["total"] == 48


@pytest.mark.parametrize("method, setting, steps, checkpoint, bank_period", [
    ("clip", "full", 4, 2, None),    # inside an epoch of 6 batches: skip_first_batches must give the same batches
    ("ecca", "medium", 4, 3, None),  # at an epoch boundary (16 per batch): the bank is rebuilt from the same weights
    ("ecca", "medium", 4, 2, "1"),  # mid-epoch in the epoch the bank was built: the checkpoint's bank is used
    ("ecca", "medium", 6, 4, "2"),  # inside a 2-epoch bank period: the bank of epoch 0 comes from the checkpoint
])
def test_resume_after_a_kill_matches_an_uninterrupted_run(run, synth, tmp_path, method, setting, steps, checkpoint,
                                                          bank_period):
    extra = ["--max_train_steps", str(steps), "--checkpointing_steps", str(checkpoint), "--setting", setting,
             "--validation_epochs", "0", "--no-eval_test"]  # the final model is then the last one
    if method == "ecca":
        extra += ["--train_batch_size", "16"]
    if bank_period:
        extra += ["--bank_refresh_epochs", bank_period]
    straight = tmp_path / "straight"
    run.main(_argv(method, synth, straight, *extra))
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    # the run was killed right after checkpoint-K, while writing the next one
    shutil.copytree(straight / f"checkpoint-{checkpoint}", resumed / f"checkpoint-{checkpoint}")
    (resumed / f".checkpoint-{checkpoint + 1}.tmp").mkdir()
    (resumed / f".checkpoint-{checkpoint + 1}.tmp" / "model.safetensors").write_bytes(b"half")
    run.main(_argv(method, synth, resumed, *extra, "--resume_from_checkpoint", "latest"))
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed parameters differ from the uninterrupted run's"
    assert not (resumed / f".checkpoint-{checkpoint + 1}.tmp").exists()
    assert json.loads((resumed / "results.json").read_text())["global_step"] == steps
    if bank_period:  # the checkpoint carries the bank, and the resumed run built none of its own before going on
        assert (straight / f"checkpoint-{checkpoint}" / "ecca_bank.safetensors").is_file()
        assert json.loads((resumed / "results.json").read_text())["bank_refreshes"] == (
            json.loads((straight / "results.json").read_text())["bank_refreshes"] - 1)


@pytest.mark.parametrize("damage", ["truncate", "no_manifest"])
def test_a_damaged_checkpoint_is_refused_naming_the_folder(run, synth, tmp_path, damage):
    out = tmp_path / "out"
    argv = _argv("clip", synth, out, "--max_train_steps", "1", "--checkpointing_steps", "1", "--validation_epochs",
                 "0", "--no-eval_test")
    run.main(argv)
    folder = out / "checkpoint-1"
    if damage == "truncate":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        (folder / "tipr_checkpoint.json").unlink()
    with pytest.raises(SystemExit) as err:
        run.main(argv + ["--resume_from_checkpoint", "latest"])
    message = str(err.value)
    assert str(folder) in message and ("corrupt" in message or "incomplete" in message)


def test_push_to_hub_offline_fails_fast_after_saving(run, synth, tmp_path, monkeypatch):
    from tipr.hub import HubUnreachableError
    from tipr.models.tipr_model import load_model
    from tipr.training.hub_push import push_folder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    argv = _argv("clip", synth, out, "--max_train_steps", "1", "--validation_epochs", "0", "--no-eval_test",
                 "--push_to_hub", "--hub_model_id", "someone/tipr-test")
    with pytest.raises(HubUnreachableError, match="saved locally"):
        run.main(argv)
    assert load_model(out).method == "clip"  # the local save was complete before the upload was tried
    start = time.perf_counter()
    with pytest.raises(HubUnreachableError, match="HF_HUB_OFFLINE"):
        push_folder(out, "someone/tipr-test")
    assert time.perf_counter() - start < 10


# -------------------------------------------------------------------------------------- two processes
@pytest.mark.slow
def test_two_cpu_processes_train_in_sync(synth, tmp_path):
    from tipr.training.checkpoint import check_checkpoint

    out = tmp_path / "ddp"
    # the real command line users type; it imports torchvision (through timm) before tipr, which the
    # tipr-torchvision-hook .pth installed by requirements.txt repairs on CPU torch
    launcher = [shutil.which("accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(_free_port())]  # not 29500: other jobs on the machine may hold it
    argv = _argv("ecca", synth, out, "--setting", "medium", "--max_train_steps", "3", "--checkpointing_steps", "2",
                 "--eval_batch_size", "5")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(launcher + [str(REPO / "train" / "run.py"), *argv], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks
        _, stderr = proc.communicate()
        pytest.fail(f"two-process training did not finish in 240 s:\n{stderr[-4000:]}")
    assert proc.returncode == 0, stderr[-4000:]
    summary = json.loads((out / "results.json").read_text())
    assert summary["world_size"] == 2
    digests = summary["parameter_digests"]
    assert len(digests) == 2 and digests[0] == digests[1], "the two ranks ended with different parameters"
    coverage = json.loads((out / "bank_coverage.json").read_text())
    assert coverage["world_size"] == 2
    for part, total in (("images", 24), ("texts", 48)):  # batches of 5 over 2 ranks: padding is dropped
        assert coverage[part]["covered_once"] == total and coverage[part]["repeated"] == 0
    manifest = check_checkpoint(out / "checkpoint-2")
    assert {"random_states_0.pkl", "random_states_1.pkl", "model.safetensors"} <= set(manifest["files"])
    assert manifest["state"]["world_size"] == 2
