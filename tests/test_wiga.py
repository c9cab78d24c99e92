import math

import pytest
import torch
import torch.nn.functional as F

from tipr.ecca.noun_phrases import extract_noun_phrases
from tipr.ecca.wiga import PhraseIndex, phrase_iou, weights_from_iou, wiga_loss, wiga_weights
from tipr.losses import info_nce


def _features(batch, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, dim, generator=g), torch.randn(batch, dim, generator=g)


def _random_weights(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return weights_from_iou(torch.rand(batch, batch, generator=g))


def _wiga_by_the_equations(img, txt, weights, alpha, tau):
    """Eq. 15-19 written as loops."""
    v, t = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    n = len(v)

    def sim(a, b):
        return float(a @ b) / tau

    total = 0.0
    for i in range(n):
        for j in range(n):
            target = alpha * (i == j) + (1 - alpha) * float(weights[i, j])
            l_vt = -math.log(math.exp(sim(v[i], t[j])) / sum(math.exp(sim(v[i], t[k])) for k in range(n)))
            l_tv = -math.log(math.exp(sim(t[i], v[j])) / sum(math.exp(sim(t[i], v[k])) for k in range(n)))
            total += target * (l_vt + l_tv)
    return total / n


@pytest.mark.parametrize("batch,seed", [(2, 0), (5, 1), (16, 2)])
def test_wiga_with_alpha_one_is_info_nce(batch, seed):
    img, txt = _features(batch, seed=seed)
    expected = info_nce(img, txt, 0.02)
    assert torch.allclose(wiga_loss(img, txt, _random_weights(batch, seed), alpha=1.0, tau=0.02), expected, rtol=1e-5)


@pytest.mark.parametrize("alpha,tau", [(0.0, 0.5), (0.5, 0.2), (0.8, 1.0)])
def test_wiga_matches_equations_15_to_19(alpha, tau):
    img, txt = _features(4, seed=3)
    weights = _random_weights(4, seed=4)
    expected = _wiga_by_the_equations(img, txt, weights, alpha, tau)
    assert wiga_loss(img, txt, weights, alpha=alpha, tau=tau).item() == pytest.approx(expected, rel=1e-4)


def test_info_nce_normalises_features():
    img, txt = _features(6)
    assert torch.allclose(info_nce(img, txt, 0.1), info_nce(3 * img, 0.5 * txt, 0.1), rtol=1e-5)
    assert torch.allclose(info_nce(img, txt, 0.1, targets=torch.eye(6)), info_nce(img, txt, 0.1), rtol=1e-5)


def test_phrase_iou_values():
    iou = phrase_iou([{"a", "b"}, set(), {"c"}], [{"b", "c"}, {"a", "b"}, set()])
    expected = torch.tensor([[1 / 3, 1.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    assert torch.allclose(iou, expected)


def test_weights_rows_sum_to_one_diagonal_included():
    sets = [{"a", "b"}, {"b"}, {"c"}, set()]
    w = wiga_weights(sets)
    assert torch.allclose(w.sum(1), torch.ones(4))
    # row 0: IoU with itself 1, with {"b"} 1/2, with {"c"} 0 -> [2/3, 1/3, 0, 0]
    assert torch.allclose(w[0], torch.tensor([2 / 3, 1 / 3, 0.0, 0.0]))
    assert torch.allclose(w[3], torch.tensor([0.0, 0.0, 0.0, 1.0]))  # no phrase: plain InfoNCE target


def test_synonyms_and_plurals_raise_iou():
    a, b, c = extract_noun_phrases(["A man in black pants carrying a handbag.",
                                    "A man in black trousers carrying a bag.",
                                    "A woman in a red dress carrying bags."])
    iou = phrase_iou([a], [b, c])
    assert iou[0, 0].item() == 1.0
    assert iou[0, 1].item() == pytest.approx(1 / 5)  # only "bag" (handbag / bags) is shared
    raw = phrase_iou([{"man", "black pants", "handbag"}], [{"man", "black trousers", "bag"}])
    assert raw.item() < iou[0, 0].item()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_phrase_index_matches_dense_weights(seed):
    g = torch.Generator().manual_seed(seed)
    vocab = [f"p{i}" for i in range(12)]
    sets = [frozenset(v for v in vocab if torch.rand(1, generator=g) < 0.25) for _ in range(40)]
    index = PhraseIndex(sets)
    batch = torch.randperm(40, generator=g)[:16]
    has_text = torch.rand(16, generator=g) > 0.3
    visible = [sets[i] if keep else frozenset() for i, keep in zip(batch.tolist(), has_text.tolist())]
    assert torch.allclose(index.weights(batch, has_text), wiga_weights(visible))
    assert torch.allclose(index.iou(batch), phrase_iou([sets[i] for i in batch], [sets[i] for i in batch]))


def test_bad_input_errors():
    img, txt = _features(3)
    with pytest.raises(ValueError, match="weights must be"):
        wiga_loss(img, txt, torch.eye(4), alpha=0.5)
    with pytest.raises(ValueError, match="alpha"):
        wiga_loss(img, txt, torch.eye(3), alpha=1.5)
    with pytest.raises(IndexError, match="indices"):
        PhraseIndex([{"a"}]).weights([0, 1])
