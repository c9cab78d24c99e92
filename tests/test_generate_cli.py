"""python -m tipr.generate: a whole split into the cache, resuming after an interruption."""

import json
from types import SimpleNamespace

import pytest
from PIL import Image

import tipr.generation.pipeline as pipeline_module
from tipr.generate import main, split_captions
from tipr.data import load_dataset
from tipr.generation import GenerationCache
from tipr.generation.pipeline import Generator


class CountingPipe:
    """Fake text-to-image pipeline: one flat image per prompt; raises on call number `fail_on_call`."""

    def __init__(self, fail_on_call=None):
        self.fail_on_call, self.calls, self.images = fail_on_call, 0, 0

    def __call__(self, prompts, *, generator, **kwargs):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise KeyboardInterrupt("simulated interruption")
        self.images += len(prompts)
        return SimpleNamespace(images=[Image.new("RGB", (32, 64), (g.initial_seed() % 256, 0, 0)) for g in generator])


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / "CUHK-PEDES"
    (root / "imgs").mkdir(parents=True)
    records = []
    for i, split in enumerate(["train"] * 4 + ["test"] * 2 + ["val"] * 2):
        Image.new("RGB", (8, 16)).save(root / "imgs" / f"{i}.jpg")
        pid = i + 1 if split == "train" else 100 + i
        records.append({"split": split, "file_path": f"{i}.jpg", "id": pid,
                        "captions": [f"person {i} in a red shirt", f"person {i} wearing blue jeans"]})
    (root / "reid_raw.json").write_text(json.dumps(records))
    return tmp_path


def run(monkeypatch, data_root, cache_dir, pipe, *extra):
    monkeypatch.setattr(pipeline_module, "load_generator",
                        lambda id_or_dir, **kwargs: Generator(pipe, model_id=id_or_dir, steps=2))
    return main(["--dataset", "cuhk-pedes", "--data_root", str(data_root), "--generator", "fake/model",
                 "--cache", str(cache_dir), "--batch_size", "2", "--no_progress", *extra])


@pytest.mark.parametrize("split,expected", [("train", 8), ("test", 4), ("val", 4), ("all", 16)])
def test_split_captions(data_root, split, expected):
    captions = split_captions(load_dataset("cuhk-pedes", data_root), split)
    assert len(captions) == len(set(captions)) == expected


def test_interrupted_run_resumes(monkeypatch, data_root, tmp_path, capsys):
    cache_dir = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        run(monkeypatch, data_root, cache_dir, CountingPipe(fail_on_call=3))  # two batches of 2 done, then interrupted
    cache = GenerationCache(cache_dir)
    assert len(cache) == 4
    assert not [p for p in cache_dir.rglob("*") if p.is_file() and p.suffix != ".png"]  # no partial files

    pipe = CountingPipe()
    stats = run(monkeypatch, data_root, cache_dir, pipe)
    assert (stats.generated, stats.skipped, pipe.images, len(cache)) == (4, 4, 4, 8)
    assert "generated 4, skipped 4" in capsys.readouterr().out

    stats = run(monkeypatch, data_root, cache_dir, pipe, "--split", "all")  # only the val/test captions are new
    assert (stats.generated, stats.skipped, len(cache)) == (8, 8, 16)


def test_unknown_split_is_rejected(data_root):
    with pytest.raises(ValueError, match="unknown split"):
        split_captions(load_dataset("cuhk-pedes", data_root), "dev")


def test_unfinished_files_of_a_killed_run_are_swept_at_start(monkeypatch, data_root, tmp_path, capsys):
    import os
    import time

    cache = GenerationCache(tmp_path / "cache")
    (cache.root / "ab").mkdir()
    killed = cache.root / "ab" / ".abcdef12-x1y2.tmp"  # what put() leaves when killed mid-write
    live = cache.root / "ab" / ".abcdef34-z3w4.tmp"  # another process writing right now
    for path in (killed, live):
        path.write_bytes(b"\x89PNG half")
    old = time.time() - 3600
    os.utime(killed, (old, old))
    run(monkeypatch, data_root, cache.root, CountingPipe(), "--split", "test")
    assert not killed.exists() and live.exists()
    assert "removed 1 unfinished image file(s)" in capsys.readouterr().out
    assert len(cache) == 4
