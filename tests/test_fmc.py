import math

import pytest
import torch

from tipr.ecca.fmc import affinity_matrix, fmc_complete, fmc_loss

E = math.e


def test_weights_by_hand():
    # anchor e1, neighbours e1 and e2: S_01 = exp(1), S_02 = exp(0) -> weights e/(e+1), 1/(e+1)
    anchor = torch.tensor([[1.0, 0.0]])
    neighbours = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    completed, w = fmc_complete(anchor, neighbours)
    assert torch.allclose(w, torch.tensor([[E / (E + 1), 1 / (E + 1)]]))
    assert torch.allclose(completed, torch.tensor([[E / (E + 1), 1 / (E + 1)]]))
    # the paper's literal product keeps the anchor's self-loop: degree e + e + 1
    completed, w = fmc_complete(anchor, neighbours, self_loop=True)
    assert torch.allclose(w, torch.tensor([[E, E, 1.0]]) / (2 * E + 1))
    assert torch.allclose(completed, torch.tensor([[2 * E, 1.0]]) / (2 * E + 1))


def test_affinity_is_degree_normalised():
    nodes = torch.randn(3, 5, 8)
    a = affinity_matrix(nodes)
    g = torch.nn.functional.normalize(nodes, dim=-1)
    s = torch.exp(g @ g.transpose(1, 2))
    assert torch.allclose(a, s / s.sum(-1, keepdim=True))
    assert torch.allclose(a.sum(-1), torch.ones(3, 5))


@pytest.mark.parametrize("k_prime, extra", [(4, 0), (2, 1), (4, 2)])
def test_completion_is_a_convex_combination(k_prime, extra):
    g = torch.Generator().manual_seed(k_prime + extra)
    anchor = torch.randn(6, 16, generator=g)
    neighbours = torch.randn(6, k_prime, 16, generator=g)
    kwargs = {}
    if extra:
        kwargs = dict(extra_nodes=torch.randn(6, extra, 16, generator=g),
                      extra_mask=torch.tensor([[True] * extra, [False] * extra] * 3))
    completed, w = fmc_complete(anchor, neighbours, **kwargs)
    nodes = torch.cat([neighbours, kwargs["extra_nodes"]], 1) if extra else neighbours
    assert w.shape == (6, k_prime + extra) and (w >= 0).all()
    assert torch.allclose(w.sum(-1), torch.ones(6))
    assert torch.allclose(completed, torch.einsum("bn,bnd->bd", w, nodes), atol=1e-6)
    assert (completed <= nodes.amax(1) + 1e-6).all() and (completed >= nodes.amin(1) - 1e-6).all()
    if extra:  # masked extras weigh nothing: those rows equal a completion without extra nodes
        assert (w[1::2, k_prime:] == 0).all()
        plain, _ = fmc_complete(anchor[1::2], neighbours[1::2])
        assert torch.allclose(completed[1::2], plain, atol=1e-6)


def test_gradients_reach_anchor_and_neighbours():
    anchor = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1).requires_grad_()
    neighbours = torch.randn(4, 3, 8, requires_grad=True)
    frozen = torch.randn(4, 3, 8)
    fmc_loss(fmc_complete(anchor, neighbours)[0], anchor).backward()
    assert anchor.grad.abs().sum() > 0 and neighbours.grad.abs().sum() > 0
    anchor.grad = None
    fmc_loss(fmc_complete(anchor, frozen)[0], anchor).backward()  # bank rows: no grad, anchor still gets one
    assert anchor.grad.abs().sum() > 0


def test_fmc_loss_values():
    completed = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    anchor = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert fmc_loss(completed, anchor).item() == pytest.approx((1 + 25) / 2)  # mean of squared L2
    empty = torch.zeros(0, 2, requires_grad=True)
    loss = fmc_loss(empty, empty)
    assert loss.item() == 0 and loss.requires_grad
    with pytest.raises(ValueError, match="both be"):
        fmc_loss(completed, anchor[:1])


@pytest.mark.parametrize("temperature", [1.0, 0.1, 0.02])
def test_temperature_sharpens_the_weights(temperature):
    # anchor e1, neighbours at cosines 1, 0 and -1: weights exp(cos / T) normalised
    anchor = torch.tensor([[1.0, 0.0]])
    neighbours = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])
    _, w = fmc_complete(anchor, neighbours, temperature=temperature)
    expected = torch.tensor([math.exp(c / temperature) for c in (1.0, 0.0, -1.0)])
    assert torch.allclose(w[0], expected / expected.sum(), atol=1e-6)
    # the self-loop reading agrees with the affinity matrix at the same temperature
    _, w_loop = fmc_complete(anchor, neighbours, self_loop=True, temperature=temperature)
    a = affinity_matrix(torch.cat([anchor[:, None], neighbours], 1), temperature=temperature)
    assert torch.allclose(w_loop, a[:, 0], atol=1e-6)


def test_sharp_temperature_stays_finite_far_from_every_neighbour():
    anchor = torch.tensor([[1.0, 0.0, 0.0]])
    neighbours = torch.tensor([[[-1.0, 0.0, 0.0], [-0.9, 0.1, 0.0]]])  # cosines near -1: exp(-100) underflows
    completed, w = fmc_complete(anchor, neighbours, temperature=0.01)
    assert torch.isfinite(completed).all() and torch.allclose(w.sum(), torch.tensor(1.0))
    assert w[0, 1] > w[0, 0]
    with pytest.raises(ValueError, match="temperature must be > 0"):
        fmc_complete(anchor, neighbours, temperature=0.0)
