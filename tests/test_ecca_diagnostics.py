import math

import pytest
import torch

from tipr.ecca.diagnostics import completion_weight_ratio, prototype_code_stats, random_pair_cosine


def test_uniform_scores_give_uniform_codes():
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    prototypes = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])  # orthogonal to every feature
    stats = prototype_code_stats(torch.cat([features, torch.zeros(3, 1)], 1), prototypes, tau=0.1, epsilon=0.05,
                                 sinkhorn_iters=3)
    assert stats["prediction_entropy"] == pytest.approx(math.log(2), abs=1e-5)
    assert stats["code_entropy"] == pytest.approx(math.log(2), abs=1e-5)
    assert stats["score_spread"] == pytest.approx(0.0, abs=1e-6) and stats["log_K"] == pytest.approx(math.log(2))


@pytest.mark.parametrize("epsilon", [0.01, 0.05, 0.5])
def test_sharper_epsilon_gives_sharper_codes(epsilon):
    g = torch.Generator().manual_seed(0)
    features, prototypes = torch.randn(32, 8, generator=g), torch.randn(4, 8, generator=g)
    stats = prototype_code_stats(features, prototypes, tau=0.02, epsilon=epsilon, sinkhorn_iters=3)
    flatter = prototype_code_stats(features, prototypes, tau=0.02, epsilon=2 * epsilon, sinkhorn_iters=3)
    assert stats["code_entropy"] < flatter["code_entropy"] <= math.log(4) + 1e-6
    assert stats["prediction_entropy"] == pytest.approx(flatter["prediction_entropy"])


def test_random_pair_cosine_skips_the_same_person():
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # person 0: text 0, image 0; person 1: text 1, images 1 and 2 -> other-person pairs (0,1), (0,2), (1,0)
    got = random_pair_cosine(text, image, torch.tensor([0, 1]), torch.tensor([0, 1, 1]))
    assert got == pytest.approx((0.0 + 1 / math.sqrt(2) + 0.0) / 3)
    with pytest.raises(ValueError, match="two people"):
        random_pair_cosine(text, image, torch.tensor([0, 0]), torch.tensor([0, 0, 0]))


def test_completion_weight_ratio():
    anchor = torch.tensor([[1.0, 0.0]])
    pool = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])  # the 2 nearest: cosines 1 and 0
    assert completion_weight_ratio(anchor, pool, k_prime=2, temperature=1.0) == pytest.approx(math.e)
    assert completion_weight_ratio(anchor, pool, k_prime=2, temperature=0.5) == pytest.approx(math.e ** 2)


def test_diagnostics_script_on_saved_models(tmp_path, capsys, monkeypatch):
    import runpy
    import sys
    from pathlib import Path

    from tipr.data.synthetic import generate_synthpedes
    from tipr.models.tipr_model import TIPRModel

    synth = str(generate_synthpedes(tmp_path / "synth", identities=30, seed=0, image_size=(64, 32), workers=1))

    for method in ("clip", "ecca"):
        torch.manual_seed(0)
        ecca = dict(num_prototypes_s=8, fusion_heads=2, num_unified_prototypes=8, k=3, k_prime=2)
        TIPRModel(method=method, backbone=dict(name="tipr-tiny", pretrained=None, image_size=[64, 32]),
                  ecca=ecca if method == "ecca" else None).save_pretrained(tmp_path / method)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "ecca_diagnostics.py"
    monkeypatch.setattr(sys, "argv", ["ecca_diagnostics.py", "--data_root", synth, "--split", "val", "--model",
                                      str(tmp_path / "clip"), str(tmp_path / "ecca"), "--name", "clip", "ecca"])
    runpy.run_path(str(script), run_name="__main__")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    clip, ecca_row = ([c.strip() for c in line.strip("|").split("|")] for line in lines[1:])
    assert header[:5] == ["model", "R1", "mAP", "random-pair cosine", "FMC max/min weight"]
    assert clip[0] == "clip" and clip[header.index("image code entropy")] == "–"
    entropy = float(ecca_row[header.index("image code entropy")])
    assert 0 <= entropy <= float(ecca_row[header.index("log K")]) + 1e-3 == pytest.approx(math.log(8), abs=2e-3)
    assert -1 <= float(clip[header.index("random-pair cosine")]) <= 1
