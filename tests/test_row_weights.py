"""Row weights of the alignment losses: how much each pair weighs as an anchor (ECCA's completed pairs)."""

import pytest
import torch
import torch.nn.functional as F

from tipr.ecca.epga import epga_loss
from tipr.losses import info_nce, weighted_mean


def _features(n, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g), dim=-1), F.normalize(torch.randn(n, d, generator=g), dim=-1)


def _anchor_terms(img, txt, tau):
    """Per pair: -log p(own text | its image) - log p(own image | its text), from the softmax formula."""
    logits = img @ txt.t() / tau
    return -(logits.diag() - logits.logsumexp(1)) - (logits.diag() - logits.logsumexp(0))


@pytest.mark.parametrize("n,weights", [
    (5, [1.0, 1.0, 1.0, 1.0, 1.0]),
    (5, [1.0, 0.0, 0.25, 1.0, 0.0]),
    (7, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]),
])
def test_info_nce_row_weights_are_a_weighted_mean_of_anchor_terms(n, weights):
    img, txt = _features(n)
    w = torch.tensor(weights)
    expected = (w * _anchor_terms(img, txt, 0.1)).sum() / w.sum()
    assert info_nce(img, txt, 0.1, row_weights=w).item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_pair_of_weight_zero_is_still_a_negative():
    img, txt = _features(6)
    txt.requires_grad_(True)
    w = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    info_nce(img, txt, 0.1, row_weights=w).backward()
    assert txt.grad[3:].abs().sum() > 0  # pushed away from the weighted anchors' images
    # and the loss differs from dropping those rows altogether
    assert info_nce(img, txt.detach(), 0.1, row_weights=w).item() != pytest.approx(
        info_nce(img[:3], txt[:3].detach(), 0.1).item(), rel=1e-3)


@pytest.mark.parametrize("weights", [[0.0, 0.0, 0.0], [1.0, -1.0, 1.0], [1.0, 1.0]])
def test_bad_row_weights_say_what_is_wrong(weights):
    with pytest.raises(ValueError, match="row weights must be"):
        weighted_mean(torch.ones(3), torch.tensor(weights))


@pytest.mark.parametrize("weights", [[1.0, 1.0, 1.0, 1.0], [3.0, 0.0, 1.0, 0.5]])
def test_epga_row_weights(weights):
    img, txt = _features(4, d=6, seed=1)
    protos = F.normalize(torch.randn(5, 6, generator=torch.Generator().manual_seed(2)), dim=-1)
    kw = dict(tau=0.1, sinkhorn_iters=3, epsilon=0.05)
    w = torch.tensor(weights)
    # each pair's own term, by giving it all the weight (the codes do not depend on the weights)
    per_pair = torch.stack([epga_loss(img, txt, protos, row_weights=torch.eye(4)[i], **kw) for i in range(4)])
    assert per_pair.mean().item() == pytest.approx(epga_loss(img, txt, protos, **kw).item(), rel=1e-5)
    expected = (w * per_pair).sum() / w.sum()
    assert epga_loss(img, txt, protos, row_weights=w, **kw).item() == pytest.approx(expected.item(), rel=1e-5)
