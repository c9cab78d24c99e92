"""The whole product on SynthPEDES shaped like each public dataset and written in its own format: reader ->
medium partition -> a few steps of every method with per-epoch evaluation -> ``python -m tipr.evaluate`` ->
the app's gallery built from the dataset root. Real downloads have identities with one image and with many,
images with 1 to 10 captions and captions beyond the text context: the uniform default SynthPEDES has none."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

import tipr  # noqa: F401
from tipr.data import load_dataset
from tipr.data.synthetic import generate_synthpedes

REPO = Path(__file__).resolve().parents[1]
METHODS = ("clip", "ecca", "gea", "ecca+gea")
# enough people for two per evaluation split; seeds picked so ICFG-PEDES has a caption beyond 77 tokens
IDENTITIES = {"cuhk-pedes": 20, "icfg-pedes": 9, "rstpreid": 31}
SEED = 2


@pytest.fixture(scope="module")
def pipe(tmp_path_factory) -> str:
    from tipr.generation.tiny_pipeline import TiprTinyText2ImagePipeline

    folder = tmp_path_factory.mktemp("pipe") / "pipe"
    TiprTinyText2ImagePipeline.from_scratch(seed=0).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module", params=list(IDENTITIES))
def shaped(request, tmp_path_factory, pipe) -> tuple[str, Path, Path]:
    """(format, dataset folder, a generation cache holding an image for every caption)."""
    from PIL import Image

    from tipr.generation import GenerationCache, load_generator

    name = request.param
    root = tmp_path_factory.mktemp(name)
    dataset = generate_synthpedes(root / "data", identities=IDENTITIES[name], seed=SEED, image_size=(64, 32),
                                  workers=1, profile=name)
    generator = load_generator(pipe)
    cache = GenerationCache(root / "cache")
    for caption in set(load_dataset(name, dataset).all_captions()):
        shade = hashlib.sha256(caption.encode()).digest()[:3]
        cache.put(generator.cache_key(caption), Image.new("RGB", (32, 64), tuple(shade)))
    return name, dataset, root / "cache"


def test_the_whole_product_runs_on_a_real_shaped_folder(shaped, pipe, run, tmp_path, caplog, capsys):
    from tipr.app.backend import Backend
    from tipr.app.cli import AppConfig
    from tipr.data.text_context import long_captions
    from tipr.evaluate import main as evaluate_main
    from tipr.models.tipr_model import load_model

    name, dataset, cache = shaped
    data = load_dataset(name, dataset.parent)  # the parent folder, as users pass it
    per_person = {}
    for pid in data.test.image_pids:
        per_person[pid] = per_person.get(pid, 0) + 1
    if name != "rstpreid":
        assert len(set(per_person.values())) > 1, "test identities should differ in their number of images"

    generated = ["--generator", pipe, "--generation_cache", str(cache)]
    for method in METHODS:
        out = tmp_path / method.replace("+", "_")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tipr.data.text_context"):
            results = run.main([
                "--preset", "tiny", "--method", method, "--dataset", name, "--data_root", str(dataset.parent),
                "--setting", "medium", "--image_size", "64x32", "--train_batch_size", "16", "--max_train_steps", "3",
                "--validation_epochs", "1", "--eval_batch_size", "32", "--cpu", "--report_to", "none",
                "--output_dir", str(out), *(generated if "gea" in method else [])])
        manifest = json.loads((out / "partition.json").read_text())
        assert (manifest["setting"], manifest["num_pairs"]) == ("medium", len(data.train))
        shares = {mode: count / len(data.train) for mode, count in manifest["counts"].items()}
        assert shares == pytest.approx({"COMPLETE": 0.30, "IMAGE_MISSING": 0.35, "TEXT_MISSING": 0.35}, abs=0.02)
        val = next(v for k, v in results.items() if k.startswith("val"))
        for metrics in (val, results["test"]):
            assert set(metrics) == {"R1", "R5", "R10", "mAP", "mINP"}, method
            assert all(0 <= v <= 100 for v in metrics.values()) and metrics["R1"] <= metrics["R5"] <= metrics["R10"]
        long = long_captions(load_model(out).backbone.tokenizer, data.all_captions())
        reports = [r.getMessage() for r in caplog.records if r.name == "tipr.data.text_context"]
        assert reports == ([long.message(data.name)] if long.count else []), method  # once per dataset

        # python -m tipr.evaluate on the saved model gives the trainer's own test figures
        capsys.readouterr()
        printed = evaluate_main(["--model", str(out), "--dataset", name, "--data_root", str(dataset), "--json",
                                 "--device", "cpu", *(generated if "gea" in method else [])])
        assert json.loads(capsys.readouterr().out) == pytest.approx(printed)
        assert printed == pytest.approx(results["test"], abs=1e-4), method

    if name == "icfg-pedes":
        assert long.count >= 1  # ICFG-PEDES's long descriptions reach past CLIP's context

    # the app: its gallery is the dataset root's test split, searched with the trained ECCA+GEA model
    backend = Backend(AppConfig(model=str(tmp_path / "ecca_gea"), gallery=str(dataset.parent), generator=None,
                                cache_dir=str(tmp_path / "app-cache"), device="cpu"))
    searcher = backend.wait(timeout=120)
    source = searcher.index.source
    assert source.kind == name and source.image_paths == data.test.image_paths
    assert source.image_pids == data.test.image_pids and source.captions == data.test.captions
    result = searcher.search(data.test.captions[0], k=3)
    assert len(result.hits) == 3
