"""train/train_generator.py: a two-step run writes a loadable pipeline folder, a model card and a sample grid."""

import importlib.util
import json
from pathlib import Path

import numpy as np
from PIL import Image

from tipr.generation.pipeline import load_generator

SCRIPT = Path(__file__).resolve().parents[1] / "train" / "train_generator.py"
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def load_script():
    spec = importlib.util.spec_from_file_location("train_generator", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_dataset(root: Path, attributes: bool = False) -> None:
    folder = root / "CUHK-PEDES"
    (folder / "imgs").mkdir(parents=True)
    records = []
    for i, (split, colour) in enumerate(zip(["train"] * 3 + ["test", "val"], ["red", "green", "blue", "red", "blue"])):
        Image.new("RGB", (64, 128), COLOURS[colour]).save(folder / "imgs" / f"{i}.png")
        records.append({"split": split, "file_path": f"{i}.png", "id": i + 1,
                        "captions": [f"a person in a {colour} coat", f"someone wearing {colour}"]})
        if attributes:  # as SynthPEDES writes them
            records[-1]["attributes"] = {"upper_type": "coat", "upper_colour": colour}
    (folder / "reid_raw.json").write_text(json.dumps(records))


def test_two_step_run(tmp_path):
    write_dataset(tmp_path / "data")
    out = load_script().main([
        "--data_root", str(tmp_path / "data"), "--output_dir", str(tmp_path / "gen"), "--max_train_steps", "2",
        "--train_batch_size", "4", "--samples_out", str(tmp_path / "samples.png"), "--num_samples", "1",
        "--sample_steps", "2", "--report_to", "none", "--use_ema"])
    assert (out / "model_index.json").is_file() and "library_name: diffusers" in (out / "README.md").read_text()
    grid = Image.open(tmp_path / "samples.png")
    assert grid.height >= 64 * 3 and np.asarray(grid).std() > 10
    generator = load_generator(out, steps=2)
    assert generator.generate(["a person in a red coat"], progress=False)[0].size == (128, 384)


def test_text_tower_from_a_tipr_model_and_a_lower_resolution(tmp_path):
    import pytest
    import torch

    from tipr.models.tipr_model import TIPRModel

    torch.manual_seed(3)
    clip = TIPRModel(method="clip", backbone={"name": "tipr-tiny", "pretrained": None, "image_size": [64, 32]})
    clip.save_pretrained(tmp_path / "pretrain-run")
    write_dataset(tmp_path / "data")
    script = load_script()
    out = script.main([
        "--data_root", str(tmp_path / "data"), "--output_dir", str(tmp_path / "gen"), "--max_train_steps", "2",
        "--train_batch_size", "4", "--report_to", "none", "--text_pretrained", str(tmp_path / "pretrain-run"),
        "--no-train_text_encoder", "--resolution", "32x16"])
    generator = load_generator(out, steps=2)
    assert generator.native_size == (32, 16) and "A 32x16 pixel-space" in (out / "README.md").read_text()
    saved = generator.pipe.text_encoder.text.token_embedding.weight
    expected = clip.backbone.clip.token_embedding.weight.detach().half().float()  # frozen, stored in fp16
    assert torch.equal(saved, expected)
    assert generator.generate(["a person in a red coat"], progress=False)[0].size == (128, 384)
    with pytest.raises(SystemExit):
        script.parse_args(["--data_root", "x", "--resolution", "30x16"])


def test_attribute_warm_up_runs_where_the_records_carry_attributes_and_resumes(tmp_path, caplog):
    import torch

    write_dataset(tmp_path / "data", attributes=True)
    script = load_script()
    argv = ["--data_root", str(tmp_path / "data"), "--output_dir", str(tmp_path / "gen"), "--train_batch_size", "4",
            "--report_to", "none", "--text_warmup_steps", "2", "--resolution", "32x16", "--checkpointing_steps", "1",
            "--no-train_text_encoder"]
    write_dataset(tmp_path / "more", attributes=True)
    with caplog.at_level("INFO", logger="train_generator"):
        out = script.main(argv + ["--max_train_steps", "1", "--text_warmup_data", str(tmp_path / "more")])
    assert "text warm-up: 2 steps over 12 captions" in caplog.text and "upper_colour" in caplog.text
    assert "2-step warm-up" in (out / "README.md").read_text()
    warmed = load_generator(out, steps=2).pipe.text_encoder.text.token_embedding.weight.clone()
    caplog.clear()
    with caplog.at_level("INFO", logger="train_generator"):
        script.main(argv + ["--max_train_steps", "2", "--resume_from_checkpoint", "latest"])
    assert "restored with the checkpoint" in caplog.text and "text warm-up: 2 steps" not in caplog.text
    assert torch.equal(load_generator(out, steps=2).pipe.text_encoder.text.token_embedding.weight, warmed)


def test_checkpoints_are_atomic_and_pruned_and_the_upload_fails_fast_offline(tmp_path, monkeypatch):
    import pytest

    from tipr.hub import HubUnreachableError
    from tipr.training.checkpoint import check_checkpoint

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_dataset(tmp_path / "data")
    out = tmp_path / "gen"
    (out / ".checkpoint-9.tmp").mkdir(parents=True)  # left by a run killed while saving
    argv = ["--data_root", str(tmp_path / "data"), "--output_dir", str(out), "--max_train_steps", "3",
            "--train_batch_size", "2", "--report_to", "none", "--resolution", "32x16", "--checkpointing_steps", "1",
            "--checkpoints_total_limit", "2", "--push_to_hub", "--hub_model_id", "someone/tiny-generator"]
    with pytest.raises(HubUnreachableError, match="HF_HUB_OFFLINE"):
        load_script().main(argv)
    assert (out / "model_index.json").is_file()  # saved before the upload was tried
    assert sorted(p.name for p in out.glob("*checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    assert check_checkpoint(out / "checkpoint-3")["state"]["global_step"] == 3
    (out / "checkpoint-3" / "model.safetensors").write_bytes(b"cut")
    with pytest.raises(SystemExit, match="checkpoint-3 is corrupt"):
        load_script().main(argv[:-3] + ["--resume_from_checkpoint", "latest"])


def test_ema_is_checkpointed_as_safetensors_and_json_and_resumes_exactly(tmp_path):
    import shutil

    from safetensors.torch import load_file

    write_dataset(tmp_path / "data")
    common = ["--data_root", str(tmp_path / "data"), "--max_train_steps", "2", "--train_batch_size", "2",
              "--report_to", "none", "--resolution", "32x16", "--checkpointing_steps", "1", "--use_ema",
              "--ema_decay", "0.5"]
    straight = load_script().main(common + ["--output_dir", str(tmp_path / "straight")])
    saved = sorted(p.name for p in (straight / "checkpoint-1").iterdir())
    assert {"ema.safetensors", "ema.json"} <= set(saved)
    assert not [n for n in saved if n.startswith("custom_checkpoint")]  # no pickled registered object
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(straight / "checkpoint-1", resumed / "checkpoint-1")
    load_script().main(common + ["--output_dir", str(resumed), "--resume_from_checkpoint", "latest"])
    a = load_file(straight / "unet" / "diffusion_pytorch_model.safetensors")
    b = load_file(resumed / "unet" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # the saved UNet is the EMA's
