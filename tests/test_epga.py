import pytest
import torch
import torch.nn.functional as F

from tipr.ecca.epga import UnifiedPrototypes, epga_loss, sinkhorn


def _scores(batch, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    features = F.normalize(torch.randn(batch, 8, generator=g), dim=-1)
    return features @ F.normalize(torch.randn(k, 8, generator=g), dim=-1).t()


@pytest.mark.parametrize("batch,k", [(64, 16), (32, 64), (8, 8)])
def test_sinkhorn_marginals(batch, k):
    scores = _scores(batch, k)
    q = sinkhorn(scores, n_iters=200, epsilon=0.05)
    assert torch.allclose(q.sum(1), torch.ones(batch), atol=1e-5)
    assert torch.allclose(q.sum(0), torch.full((k,), batch / k), rtol=1e-2)
    q3 = sinkhorn(scores, n_iters=3, epsilon=0.05)
    assert torch.allclose(q3.sum(1), torch.ones(batch), atol=1e-5)
    assert (q3 >= 0).all()


def test_sinkhorn_follows_scores_and_is_stable():
    scores = torch.eye(4) * 0.9  # each sample closest to its own prototype
    q = sinkhorn(scores, n_iters=3, epsilon=0.05)
    assert torch.equal(q.argmax(1), torch.arange(4))
    assert torch.isfinite(sinkhorn(torch.full((4, 3), 50.0), epsilon=0.001)).all()


def _clustered_pairs(batch=48, k=6, dim=16, noise=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(k, dim, generator=g), dim=-1)
    assign = torch.arange(batch) % k
    img = centres[assign] + noise * torch.randn(batch, dim, generator=g)
    txt = centres[assign] + noise * torch.randn(batch, dim, generator=g)
    return img, txt, centres


@pytest.mark.parametrize("seed", [0, 1])
def test_epga_lower_for_aligned_than_shuffled_pairs(seed):
    img, txt, centres = _clustered_pairs(seed=seed)
    shuffled = txt[torch.randperm(len(txt), generator=torch.Generator().manual_seed(seed))]
    aligned = epga_loss(img, txt, centres, tau=0.1, sinkhorn_iters=3, epsilon=0.05)
    assert aligned < epga_loss(img, shuffled, centres, tau=0.1, sinkhorn_iters=3, epsilon=0.05) - 0.5


def test_epga_is_symmetric_and_trains_prototypes():
    img, txt, _ = _clustered_pairs()
    prototypes = UnifiedPrototypes(num_prototypes=6, dim=16)
    assert torch.allclose(prototypes().norm(dim=1), torch.ones(6))
    img.requires_grad_(True)
    loss = epga_loss(img, txt, prototypes(), tau=0.02, sinkhorn_iters=3, epsilon=0.05)
    assert torch.allclose(loss, epga_loss(txt, img, prototypes(), tau=0.02, sinkhorn_iters=3, epsilon=0.05))
    loss.backward()
    assert img.grad.abs().sum() > 0 and prototypes.weight.grad.abs().sum() > 0


def test_epga_bad_shapes():
    with pytest.raises(ValueError, match="prototypes"):
        epga_loss(torch.randn(4, 8), torch.randn(4, 8), torch.randn(3, 7), tau=0.02, sinkhorn_iters=3, epsilon=0.05)
