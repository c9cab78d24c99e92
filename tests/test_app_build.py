"""assets/build.py on tiny sizes: its commands parse with the project's own CLIs; gallery, index, size check."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build():
    return _load(REPO / "assets" / "build.py", "tipr_assets_build")


def test_dry_run_prints_every_stage_and_writes_nothing(build, tmp_path, capsys):
    build.main(["--dry_run", "--work_dir", str(tmp_path / "work"), "--assets_dir", str(tmp_path / "assets")])
    out = capsys.readouterr().out
    assert [line[3:] for line in out.splitlines() if line.startswith("== ")] == list(build.STAGES)
    for needle in ("tipr.data.synthetic", "train_generator.py", "tipr.generate", "train/run.py --preset tiny "
                   "--method ecca+gea"):
        assert needle in out
    assert not (tmp_path / "work").exists() and not (tmp_path / "assets").exists()


def test_commands_are_accepted_by_the_scripts_they_call(build, tmp_path):
    args = build.parse_args(["--work_dir", str(tmp_path), "--identities", "30"])
    cmds = build.commands(args)
    from tipr.generate import parse_args as generate_args

    assert generate_args(cmds["generate"][3:]).split == "all"
    train_generator = _load(REPO / "train" / "train_generator.py", "tipr_train_generator")
    generator = train_generator.parse_args(cmds["generator"][2:])
    assert (generator.max_train_steps, generator.text_pretrained) == \
        (args.generator_steps, str(tmp_path / "pretrain-run"))
    run_argv = cmds["model"][cmds["model"].index(str(REPO / "train" / "run.py")) + 1:]
    from tipr.training.args import parse_args as run_args

    parsed = run_args(run_argv)
    assert (parsed.method, parsed.model_name, parsed.num_train_epochs, parsed.setting, parsed.pretrained) == \
        ("ecca+gea", "tipr-tiny", args.epochs, "full", str(tmp_path / "pretrain-run"))
    pretrain = run_args(cmds["pretrain"][2:])
    assert (pretrain.method, pretrain.loss, pretrain.supervised, pretrain.data_root) == \
        ("clip", "infonce", False, str(tmp_path / "pretrain-mixed"))
    data = cmds["pretrain-data"]
    assert data[data.index("--identities") + 1] == str(args.pretrain_identities)
    captions = cmds["pretrain-captions"]
    assert "--keep_captions" in captions and captions[captions.index("--out") + 1] == str(tmp_path / "pretrain-mixed")


def test_gallery_index_and_size_check_on_a_tiny_build(build, tmp_path, capsys):
    from tipr.app.gallery import read_gallery
    from tipr.app.index_store import INDEX_DIRNAME
    from tipr.app.testing import build_random_model

    common = ["--work_dir", str(tmp_path / "work"), "--assets_dir", str(tmp_path / "assets"), "--identities", "30"]
    build.main(["--stages", "synth", *common])
    build_random_model(tmp_path / "assets" / "model")
    build.main(["--stages", "gallery,index", *common])
    source, _ = read_gallery(tmp_path / "assets" / "gallery")
    assert len(source.image_paths) == 12 and len(source.captionless) == round(0.2 * 12)
    assert sorted(source.attributes) == list(range(12)) and "visible" in source.attributes[0]  # SynthPEDES's truth
    assert (tmp_path / "assets" / "gallery" / INDEX_DIRNAME / "images.faiss").is_file()
    out = capsys.readouterr().out
    assert "12 images, 20 captions, 2 captionless" in out
    assert "gallery took" in out and "index took" in out
    assert re.search(r"== time per stage\n   gallery +\d+\.\d s\n   index +\d+\.\d s\n   all +\d+\.\d s", out)

    with pytest.raises(SystemExit, match=r"model\.safetensors: \d+\.\d\d MiB"):  # random fp32 weights: ~19 MiB
        build.main(["--stages", "check", *common])
    import torch
    from safetensors.torch import load_file

    from tipr.models.tipr_model import load_model

    random = load_model(tmp_path / "assets" / "model")
    shards = build.shard_model(tmp_path / "assets" / "model", 10 * 2**20)
    assert len(shards) == 2 and not (tmp_path / "assets" / "model" / "model.safetensors").exists()
    # float32 but the one tensor over 10 MiB alone (the token embedding), which the Hub's layout never splits
    halved = {k for p in shards for k, v in load_file(p).items() if v.dtype == torch.float16}
    assert halved == {"backbone.clip.token_embedding.weight"}
    build.main(["--stages", "check", *common])
    assert "every file is under 10 MiB" in capsys.readouterr().out
    loaded = load_model(tmp_path / "assets" / "model")
    assert next(loaded.parameters()).dtype == torch.float32
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in random.state_dict().items() if k not in halved)


@pytest.mark.parametrize("seconds,text", [(0.04, "0.0 s"), (9.94, "9.9 s"), (42.4, "42 s"), (725, "12 min 05 s"),
                                          (3720, "1 h 02 min")])
def test_stage_times_read_like_a_clock(build, seconds, text):
    assert build.format_seconds(seconds) == text


def test_unknown_stage_is_refused(build):
    with pytest.raises(SystemExit):
        build.parse_args(["--stages", "synth,bogus"])
    assert sys.executable in build.commands(build.parse_args([]))["synth"]
