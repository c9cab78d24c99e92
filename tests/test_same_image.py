"""Two captions of one image are not negatives of each other: InfoNCE and WIGA leave them out."""

import math

import pytest
import torch
import torch.nn.functional as F

from tipr.ecca.wiga import weights_from_iou, wiga_loss
from tipr.losses import info_nce, same_image_mask


def _by_the_equations(img, txt, weights, alpha, tau, exclude):
    """Eq. 15-19 as loops, with excluded entries dropped from each softmax and each target row renormalised."""
    v, t = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    n = len(v)
    total = 0.0
    for a, b, mask in ((v, t, exclude), (t, v, exclude.t())):
        for i in range(n):
            keep = [k for k in range(n) if not mask[i, k]]
            target = {j: alpha * (i == j) + (1 - alpha) * float(weights[i, j]) for j in keep}
            norm = sum(target.values())
            denominator = sum(math.exp(float(a[i] @ b[k]) / tau) for k in keep)
            for j in keep:
                total += target[j] / norm * -math.log(math.exp(float(a[i] @ b[j]) / tau) / denominator)
    return total / n


@pytest.mark.parametrize("ids,expected", [
    ([7, 7, 3], [[0, 1, 0], [1, 0, 0], [0, 0, 0]]),
    ([5], [[0]]),
    ([2, 9, 2, 2], [[0, 0, 1, 1], [0, 0, 0, 0], [1, 0, 0, 1], [1, 0, 1, 0]]),
])
def test_same_image_mask(ids, expected):
    assert same_image_mask(torch.tensor(ids)).int().tolist() == expected


@pytest.mark.parametrize("ids,alpha,tau", [
    ([0, 0, 1, 2, 2, 2], 1.0, 0.1),  # plain InfoNCE: an image with 2 and one with 3 captions
    ([4, 4, 9, 1], 0.8, 0.5),
    ([3, 3, 3, 3, 3, 8, 8, 8, 8, 8], 0.5, 0.2),  # 5 captions per image
])
def test_excluded_pairs_leave_the_softmax(ids, alpha, tau):
    g = torch.Generator().manual_seed(len(ids))
    img, txt = torch.randn(len(ids), 8, generator=g), torch.randn(len(ids), 8, generator=g)
    weights = weights_from_iou(torch.rand(len(ids), len(ids), generator=g))
    exclude = same_image_mask(torch.tensor(ids))
    expected = _by_the_equations(img, txt, weights, alpha, tau, exclude)
    assert wiga_loss(img, txt, weights, alpha=alpha, tau=tau, exclude=exclude).item() == pytest.approx(expected,
                                                                                                      rel=1e-4)
    if alpha == 1.0:
        assert info_nce(img, txt, tau, exclude=exclude).item() == pytest.approx(expected, rel=1e-4)
    # without siblings in the batch the mask changes nothing
    plain = same_image_mask(torch.arange(len(ids)))
    assert torch.allclose(info_nce(img, txt, tau, exclude=plain), info_nce(img, txt, tau))
    assert not torch.allclose(info_nce(img, txt, tau, exclude=exclude), info_nce(img, txt, tau))


def test_a_sibling_gets_no_gradient():
    g = torch.Generator().manual_seed(0)
    img = torch.randn(3, 8, generator=g)
    txt = torch.randn(3, 8, generator=g).requires_grad_()
    info_nce(img, txt[[0, 1, 2]] * torch.tensor([[1.0], [1.0], [1.0]]), 0.1,
             exclude=same_image_mask(torch.tensor([5, 5, 6]))).backward()
    # caption 1 is excluded from image 0's row and vice versa; its gradient only comes from its own rows
    only_own = txt.detach().clone().requires_grad_()
    logits = F.normalize(img, dim=-1) @ F.normalize(only_own, dim=-1).t() / 0.1
    keep = ~same_image_mask(torch.tensor([5, 5, 6]))
    loss = sum(-torch.log_softmax(logits[i][keep[i]], 0)[keep[i][:i].sum()] for i in range(3)) / 3
    loss = loss + sum(-torch.log_softmax(logits.t()[i][keep[i]], 0)[keep[i][:i].sum()] for i in range(3)) / 3
    loss.backward()
    assert torch.allclose(txt.grad, only_own.grad, atol=1e-6)


def test_exclude_must_be_a_bool_square_mask():
    img = torch.randn(3, 4)
    with pytest.raises(ValueError, match="exclude must be a bool"):
        info_nce(img, img, 0.1, exclude=torch.zeros(3, 3))
