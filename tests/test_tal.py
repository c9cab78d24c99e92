import math

import pytest
import torch

import tipr  # noqa: F401
from tipr.gea.tal import tal_from_scores, tal_loss

# txt = identity, img_j = 2/3 everywhere but 1/3 at j (unit norm: 1/9 + 4/9 + 4/9 = 1), so the cosine matrix
# S = txt @ img.T has 1/3 on the diagonal and 2/3 elsewhere (symmetric, so both directions agree).
TXT = torch.eye(3)
IMG = torch.full((3, 3), 2 / 3) - torch.eye(3) / 3
TAU, MARGIN = 0.1, 0.1


def test_tal_instance_level_hand_computed():
    # each row: positive 1/3, two negatives 2/3 -> tau*log(2 e^{(2/3)/tau}) = 2/3 + tau ln 2
    # per row 0.1 - 1/3 + 2/3 + 0.1 ln 2 = 0.5026481, two directions -> 1.0052961
    loss = tal_loss(IMG, TXT, None, tau=TAU, margin=MARGIN)
    assert loss.item() == pytest.approx(1.0052961, abs=1e-6)


def test_tal_identity_positives_hand_computed():
    # pids [0, 0, 1]: rows 0/1 have positives {1/3, 2/3} weighted by softmax(./tau), one negative 2/3;
    # row 2 has positive 1/3 and negatives {2/3, 2/3}
    e = math.exp((2 / 3 - 1 / 3) / TAU)
    soft_pos = (1 / 3 + 2 / 3 * e) / (1 + e)
    row01 = MARGIN - soft_pos + 2 / 3
    row2 = MARGIN - 1 / 3 + 2 / 3 + TAU * math.log(2)
    expected = 2 * (2 * row01 + row2) / 3
    loss = tal_loss(IMG, TXT, torch.tensor([0, 0, 1]), tau=TAU, margin=MARGIN)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.4837, abs=1e-4)


def test_tal_normalises_features():
    loss = tal_loss(IMG * 5.0, TXT * 0.2, None, tau=TAU, margin=MARGIN)
    assert loss.item() == pytest.approx(1.0052961, abs=1e-6)


@pytest.mark.parametrize("pids", [None, torch.tensor([0, 0, 1, 1, 2, 3])])
def test_tal_zero_when_positives_win_by_far(pids):
    # one-hot features per identity: positives score 1, negatives 0, far beyond margin 0.1
    ids = torch.arange(6) if pids is None else pids
    feats = torch.nn.functional.one_hot(ids, 6).float().requires_grad_()
    loss = tal_loss(feats, feats, pids, tau=0.015, margin=0.1)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(feats.grad == 0)


def test_tal_no_negative_rows_give_zero_and_finite_grad():
    img = torch.randn(4, 8, requires_grad=True)
    loss = tal_loss(img, torch.randn(4, 8), torch.zeros(4, dtype=torch.long), tau=TAU, margin=MARGIN)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(img.grad).all()


def test_tal_from_scores_hand_computed_with_mask():
    pos = torch.tensor([0.5, 0.9], requires_grad=True)
    neg = torch.tensor([[0.4, 0.4], [0.1, 5.0]])
    mask = torch.tensor([[True, True], [True, False]])  # the 5.0 is not a negative
    # row 0: 0.1 - 0.5 + 0.4 + 0.1 ln 2 = 0.0693147; row 1: 0.1 - 0.9 + 0.1 < 0 -> 0
    loss = tal_from_scores(pos, neg, tau=TAU, margin=MARGIN, neg_mask=mask)
    assert loss.item() == pytest.approx(0.0693147 / 2, abs=1e-6)
    loss.backward()
    assert pos.grad.tolist() == pytest.approx([-0.5, 0.0])


def test_tal_from_scores_row_without_negatives():
    loss = tal_from_scores(torch.tensor([0.0]), torch.tensor([[1.0]]), tau=TAU, margin=MARGIN,
                           neg_mask=torch.tensor([[False]]))
    assert loss.item() == 0.0


@pytest.mark.parametrize(
    "call",
    [
        lambda: tal_loss(torch.randn(3, 4), torch.randn(2, 4), tau=TAU, margin=MARGIN),
        lambda: tal_loss(torch.randn(3, 4), torch.randn(3, 4), torch.tensor([0, 1]), tau=TAU, margin=MARGIN),
        lambda: tal_loss(torch.randn(3, 4), torch.randn(3, 4), tau=0.0, margin=MARGIN),
        lambda: tal_from_scores(torch.randn(3), torch.randn(2, 4), tau=TAU, margin=MARGIN),
    ],
)
def test_tal_bad_input(call):
    with pytest.raises(ValueError):
        call()
