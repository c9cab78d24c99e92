import pytest
import torch

import tipr  # noqa: F401
from tipr.gea.gif import GIF, FusionQuery, gif_loss, hard_negatives, rerank

DIM = 16


def _gif(seed=0, layers=1):
    torch.manual_seed(seed)
    return GIF(dim=DIM, heads=2, layers=layers)


def test_hard_negatives_exclude_own_pair_and_identity():
    sim = torch.tensor(
        [
            [0.9, 0.8, 0.1, 0.5],
            [0.7, 0.9, 0.6, 0.2],
            [0.3, 0.4, 0.9, 0.8],
            [0.1, 0.2, 0.6, 0.9],
        ]
    )
    index, valid = hard_negatives(sim, None, 2)
    assert index.tolist() == [[1, 3], [0, 2], [3, 1], [2, 1]] and valid.all()
    index, valid = hard_negatives(sim, torch.tensor([7, 7, 3, 5]), 2)
    assert index[:, 0].tolist() == [3, 2, 3, 2]
    assert valid.tolist() == [[True, True], [True, True], [True, True], [True, True]]
    index, valid = hard_negatives(sim, torch.tensor([7, 7, 7, 5]), 3)
    assert index[0, :1].tolist() == [3] and valid.sum(1).tolist() == [1, 1, 1, 3]


def test_score_ignores_padding_and_masked_generated_tokens():
    gif = _gif()
    text, gen, img = torch.randn(2, 5, DIM), torch.randn(2, 4, DIM), torch.randn(2, 6, DIM)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    none = torch.zeros(2, 4, dtype=torch.bool)
    base = gif.score(text, mask, gen, img)
    noisy = text.clone()
    noisy[0, 3:] = 100.0
    assert torch.allclose(gif.score(noisy, mask, gen, img), base, atol=1e-5)
    assert torch.allclose(gif.score(text, mask, gen, img, gen_mask=none), gif.score(text, mask, None, img), atol=1e-5)
    assert not torch.allclose(gif.score(text, mask, None, img), base, atol=1e-3)


def _rerank_setup(q=3, k=5, gallery=10):
    g = torch.Generator().manual_seed(1)
    query = FusionQuery(torch.randn(q, 5, DIM, generator=g), None, torch.randn(q, 4, DIM, generator=g))
    bank = torch.randn(gallery, 6, DIM, generator=g)
    ids = torch.stack([torch.randperm(gallery, generator=g)[:k] for _ in range(q)])
    base = torch.rand(q, k, generator=g).sort(dim=1, descending=True).values
    return query, bank, ids, base


@pytest.mark.parametrize("batch_size", [1, 4, 256])
def test_rerank_is_a_permutation_with_consistent_scores(batch_size):
    gif = _gif()
    query, bank, ids, base = _rerank_setup()
    out_ids, out_scores = rerank(gif, query, ids, bank, base, weight=0.5, batch_size=batch_size)
    assert out_ids.shape == ids.shape
    for q in range(ids.shape[0]):
        assert sorted(out_ids[q].tolist()) == sorted(ids[q].tolist())
        assert torch.all(out_scores[q, :-1] >= out_scores[q, 1:])
        fused = gif.score(query.text_tokens[q].expand(5, -1, -1), None, query.gen_tokens[q].expand(5, -1, -1),
                          bank[ids[q]])
        expected = (base[q] + 0.5 * fused).detach()
        got = torch.stack([out_scores[q, out_ids[q].tolist().index(c)] for c in ids[q].tolist()])
        assert torch.allclose(got, expected, atol=1e-5)


def test_rerank_callable_single_query_and_zero_weight():
    gif = _gif()
    query, bank, ids, base = _rerank_setup()
    by_tensor = rerank(gif, query, ids, bank, base, weight=1.0)
    by_fn = rerank(gif, query, ids, lambda c: bank[c], base, weight=1.0)
    assert torch.equal(by_tensor[0], by_fn[0]) and torch.allclose(by_tensor[1], by_fn[1])
    one = rerank(gif, FusionQuery(query.text_tokens[1], None, query.gen_tokens[1]), ids[1], bank, base[1], weight=1.0)
    assert torch.equal(one[0], by_tensor[0][1]) and torch.allclose(one[1], by_tensor[1][1])
    kept = rerank(gif, query, ids, bank, base, weight=0.0)  # base is sorted: order unchanged
    assert torch.equal(kept[0], ids)
    assert gif.training  # mode restored


def test_gif_loss_decreases_on_toy_problem():
    gif = _gif(layers=1)
    g = torch.Generator().manual_seed(0)
    b = 6
    img = torch.randn(b, 6, DIM, generator=g)
    text = img[:, :4] + 0.5 * torch.randn(b, 4, DIM, generator=g)  # each caption echoes its image
    gen = img[:, :3] + 0.5 * torch.randn(b, 3, DIM, generator=g)
    sim = torch.randn(b, b, generator=g)
    opt = torch.optim.Adam(gif.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = gif_loss(gif, text, None, gen, img, sim, None, num_negatives=3, tau=0.015, margin=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 0.05
    assert losses[-1] < 0.5 * losses[0]


def test_gif_loss_without_admissible_negatives_is_zero():
    gif = _gif()
    x = torch.randn(3, 4, DIM)
    loss = gif_loss(gif, x, None, None, x, torch.randn(3, 3), torch.zeros(3, dtype=torch.long), num_negatives=3,
                    tau=0.015, margin=0.1)
    assert loss.item() == 0.0


@pytest.mark.parametrize(
    "call",
    [
        lambda g: g.score(torch.randn(2, 5, DIM), None, None, torch.randn(3, 6, DIM)),
        lambda g: hard_negatives(torch.randn(3, 4), None, 2),
        lambda g: rerank(g, FusionQuery(torch.randn(2, 5, DIM), None, None), torch.zeros(2, 3, dtype=torch.long),
                         torch.randn(4, 6, DIM), torch.zeros(2, 4), weight=1.0),
        lambda g: GIF(dim=DIM, heads=3, layers=1),
    ],
)
def test_bad_input(call):
    with pytest.raises(ValueError):
        call(_gif())
