"""tipr.evaluate: metrics equal a direct computation, GIF re-ranking only reorders the top K, the CLI prints them."""

from __future__ import annotations

import json

import pytest
import torch

import tipr  # noqa: F401
from tipr.data import EvalSplit, ImageList, load_dataset
from tipr.evaluate import encode_split, evaluate, main
from tipr.metrics import rank_metrics
from tipr.models.tipr_model import TIPRModel

TINY = {"name": "tipr-tiny", "pretrained": None, "image_size": [64, 32]}
KEYS = {"R1", "R5", "R10", "mAP", "mINP"}


@pytest.fixture(scope="module")
def split(synth) -> EvalSplit:
    """The train split as a gallery: 6 identities, 24 images, 48 captions (val/test hold one identity)."""
    data = load_dataset("synthpedes", synth)
    return EvalSplit(image_paths=list(data.train_image_paths),
                     image_pids=[next(r.pid for r in data.train if r.image_id == i)
                                 for i in range(len(data.train_image_paths))],
                     captions=[r.caption for r in data.train], caption_pids=[r.pid for r in data.train])


def _model(method: str, seed: int = 0, **gea) -> TIPRModel:
    torch.manual_seed(seed)
    options = {"tgte_heads": 4, "gif_heads": 4, **gea} if "gea" in method else None
    return TIPRModel(method=method, backbone=TINY, gea=options).eval()


@pytest.mark.parametrize("batch_size", [7, 64])
def test_metrics_equal_a_direct_computation(split, batch_size):
    model = _model("clip", seed=1)
    with torch.no_grad():
        images = torch.stack(list(ImageList(split.image_paths, model.image_transform())))
        sim = model.encode_texts(model.tokenize(split.captions)) @ model.encode_images(images).t()
    expected = rank_metrics(sim, torch.tensor(split.caption_pids), torch.tensor(split.image_pids))
    got = evaluate(model, split, batch_size=batch_size, device="cpu")
    assert set(got) == KEYS
    assert got == pytest.approx(expected, abs=1e-4)
    assert 0 < got["mINP"] <= got["mAP"] <= 100 and got["R1"] <= got["R5"] <= got["R10"]


def test_rerank_reorders_only_the_top_k_by_gif_score(split):
    model = _model("gea", seed=2, rerank_weight=1.0)
    torch.manual_seed(3)
    generated = [torch.randn(3, 64, 32) for _ in split.captions]
    k = 5
    base = encode_split(model, split, batch_size=16, generated=generated)
    reranked = encode_split(model, split, batch_size=16, generated=generated, rerank_top_k=k)
    top_base = base.topk(k, dim=1).indices
    top_new = reranked.topk(k, dim=1).indices
    assert torch.equal(top_base.sort(1).values, top_new.sort(1).values)  # same candidates, never added or dropped
    rest = torch.ones_like(base, dtype=torch.bool).scatter(1, top_base, False)
    assert torch.equal(base[rest], reranked[rest])  # the rest keeps its two-tower scores
    # the new order follows cosine + GIF score, computed here pair by pair
    with torch.no_grad():
        q = 0
        ids = model.tokenize([split.captions[q]])
        gen = model.generated_features(generated[q][None])
        _, text = model.text_features(ids, gen, torch.tensor([True]))
        images = torch.stack([ImageList(split.image_paths, model.image_transform())[int(i)] for i in top_base[q]])
        img_tokens = model.backbone.encode_image(images).tokens
        scores = model.gif.score(text.tokens.expand(k, -1, -1), text.mask.expand(k, -1),
                                 gen.tokens.expand(k, -1, -1), img_tokens)
    final = base[q, top_base[q]] + scores
    assert torch.equal(top_base[q][final.argsort(descending=True)], top_new[q])
    metrics = evaluate(model, split, batch_size=16, generated=generated, rerank_top_k=k)
    assert set(metrics) == KEYS


def test_rerank_weight_zero_keeps_the_two_tower_ranking(split):
    model = _model("gea", seed=2, rerank_weight=0.0)
    torch.manual_seed(3)
    generated = [torch.randn(3, 64, 32) for _ in split.captions]
    plain = evaluate(model, split, batch_size=16, generated=generated)
    assert evaluate(model, split, batch_size=16, generated=generated, rerank_top_k=5) == pytest.approx(plain)


def test_bad_requests_are_refused(split):
    with pytest.raises(ValueError, match="needs a model with GIF"):
        evaluate(_model("clip"), split, rerank_top_k=3)
    with pytest.raises(ValueError, match="generated has 2 images for 48 captions"):
        evaluate(_model("gea"), split, generated=[torch.zeros(3, 64, 32)] * 2)


def test_cli_prints_json_or_a_table(synth, tmp_path, capsys):
    folder = tmp_path / "model"
    _model("clip").save_pretrained(folder)
    metrics = main(["--model", str(folder), "--dataset", "synthpedes", "--data_root", synth, "--json",
                    "--device", "cpu"])
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == KEYS and printed == pytest.approx(metrics)
    main(["--model", str(folder), "--dataset", "synthpedes", "--data_root", synth, "--split", "val"])
    table = capsys.readouterr().out
    assert "| R1 | R5 | R10 | mAP | mINP |" in table and "synthpedes val" in table
