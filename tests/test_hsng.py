import math

import pytest
import torch
import torch.nn.functional as F

from tipr.ecca.hsng import hsng_neighbours, jaccard_distance, k_reciprocal_sets, knn, plain_neighbours


def on_circle(degrees):
    a = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([a.cos(), a.sin()], 1).float()


# Hand-built example in 2-D: cosine order = angular order. k = 3.
#   images v0..v6 at   0, 20, 35, 53, 58, 64, 120 degrees
#   texts  t0..t4 at  14,  1, -2,  3, 100 degrees
# Self-modal N_3 (itself first):  N(v0) = {v0,v1,v2}  N(v1) = {v1,v2,v0}  N(v2) = {v2,v1,v3}  N(v3) = {v3,v4,v5}
# R_3(v0) = {v0,v1} (v0 is not in N(v2)), R_3(v1) = {v0,v1,v2}, R_3(v2) = {v1,v2} (v2 is not in N(v3)).
# Cross-modal N_3 over texts: N(v0) = {t1,t2,t3}, N(v1) = N(v2) = {t0,t3,t1}.
# Query t0 (14 deg): N_3(t0) = [v1, v0, v2]; t0 is not in N(v0), so R_3(t0) = {v1, v2};
#   d(t0,v1) = 1 - 2/3 = 1/3, d(t0,v0) = 1 - 1/3 = 2/3, d(t0,v2) = 1 - 2/2 = 0  ->  HSNG [v2, v1, v0].
# Query t2 (-2 deg): N_3(t2) = [v0, v1, v2]; only v0 has t2 in its N_3, so R_3(t2) = {v0};
#   d(t2,v0) = 1 - 1/2 = 1/2, d(t2,v1) = 1 - 1/3 = 2/3, d(t2,v2) = 1 - 0/3 = 1  ->  [v0] + fill [v1, v2].
IMAGES = on_circle([0, 20, 35, 53, 58, 64, 120])
TEXTS = on_circle([14, 1, -2, 3, 100])


@pytest.mark.parametrize("use_faiss", [False, True])
def test_k_reciprocal_sets_by_hand(use_faiss):
    idx, recip = k_reciprocal_sets(TEXTS[[0, 2]], IMAGES, TEXTS, k=3, use_faiss=use_faiss)
    assert idx.tolist() == [[1, 0, 2], [0, 1, 2]]
    assert recip.tolist() == [[True, False, True], [True, False, False]]
    idx, recip = k_reciprocal_sets(IMAGES[:3], IMAGES, IMAGES, k=3, use_faiss=use_faiss)
    assert idx.tolist() == [[0, 1, 2], [1, 2, 0], [2, 1, 3]]
    assert recip.tolist() == [[True, True, False], [True, True, True], [True, True, False]]


@pytest.mark.parametrize("use_faiss", [False, True])
@pytest.mark.parametrize("k_prime, expected, distances", [
    (2, [[2, 1], [0, 1]], [[0, 1 / 3], [1 / 2, 2 / 3]]),
    (3, [[2, 1, 0], [0, 1, 2]], [[0, 1 / 3, 2 / 3], [1 / 2, 2 / 3, 1]]),
])
def test_hsng_by_hand(use_faiss, k_prime, expected, distances):
    idx, dist = hsng_neighbours(TEXTS[[0, 2]], IMAGES, TEXTS, k=3, k_prime=k_prime, use_faiss=use_faiss)
    assert idx.tolist() == expected
    assert torch.allclose(dist, torch.tensor(distances), atol=1e-6)
    plain, _ = plain_neighbours(TEXTS[[0, 2]], IMAGES, k_prime=2, use_faiss=use_faiss)
    assert plain.tolist() == [[1, 0], [0, 1]]  # cosine alone keeps t0's non-reciprocal v0


def test_hsng_query_outside_self_bank():
    # t0 removed from the text bank: "t0 in N_3(v)" then means "t0 would rank in v's top 3", same answer
    idx, _ = hsng_neighbours(TEXTS[[0]], IMAGES, TEXTS[1:], k=3, k_prime=2, use_faiss=False)
    assert idx.tolist() == [[2, 1]]


def test_jaccard_distance_values():
    a = torch.tensor([[1, 5, 7], [1, 5, 7], [0, 0, 0]])
    a_mask = torch.tensor([[True, True, False], [True, True, True], [False, False, False]])
    b = torch.tensor([[5, 9, 1], [2, 3, 4], [0, 0, 0]])
    b_mask = torch.tensor([[True, True, False], [True, True, True], [False, False, False]])
    # {1,5} vs {5,9}: 1 - 1/3; {1,5,7} vs {2,3,4}: 1 - 0/6; empty vs empty: 1
    assert jaccard_distance(a, a_mask, b, b_mask).tolist() == pytest.approx([2 / 3, 1.0, 1.0])


@pytest.mark.parametrize("seed", [0, 1])
def test_faiss_matches_dense(seed):
    g = torch.Generator().manual_seed(seed)
    texts = F.normalize(torch.randn(300, 16, generator=g), dim=-1)
    images = F.normalize(torch.randn(150, 16, generator=g), dim=-1)
    for query, cross, own in ((texts[:60], images, texts), (images[:40], texts, images)):
        s_d, i_d = knn(query, cross, 6, use_faiss=False)
        s_f, i_f = knn(query, cross, 6, use_faiss=True)
        assert torch.equal(i_d, i_f) and torch.allclose(s_d, s_f, atol=1e-5)
        idx_d, dist_d = hsng_neighbours(query, cross, own, use_faiss=False)
        idx_f, dist_f = hsng_neighbours(query, cross, own, use_faiss=True, query_chunk=7)
        assert torch.equal(idx_d, idx_f) and torch.allclose(dist_d, dist_f)
        assert idx_d.shape == (len(query), 4) and (idx_d.sort(1).values.diff(dim=1) > 0).all()  # distinct


def test_bad_arguments():
    with pytest.raises(ValueError, match="k_prime <= k"):
        hsng_neighbours(TEXTS, IMAGES, TEXTS, k=3, k_prime=4)
    with pytest.raises(ValueError, match="fewer than k=6"):
        hsng_neighbours(TEXTS, IMAGES, TEXTS)
    with pytest.raises(ValueError, match="feature dim"):
        hsng_neighbours(TEXTS, torch.randn(10, 3), TEXTS, k=3, k_prime=2)


def _clustered(n: int, centres: int, dim: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(centres, dim, generator=g)
    return F.normalize(c[torch.arange(n) % centres] + 0.3 * torch.randn(n, dim, generator=g), dim=-1)


@pytest.mark.parametrize("spec,params", [("IVF16,Flat", "nprobe=16"), ("HNSW16", "efSearch=64")])
def test_approximate_faiss_index_matches_exact_when_searching_everything(spec, params):
    bank, query = _clustered(2000, 40, 16, 0), _clustered(50, 40, 16, 1)
    exact = hsng_neighbours(query, bank, _clustered(1500, 40, 16, 2), k=6, k_prime=4)
    approx = hsng_neighbours(query, bank, _clustered(1500, 40, 16, 2), k=6, k_prime=4, index=spec,
                             index_params=params)
    agree = (exact[0] == approx[0]).float().mean()
    assert agree > 0.95  # IVF with nprobe = nlist is exact; HNSW at this size nearly so


def test_faiss_index_too_small_to_train_falls_back_to_exact():
    bank, query = _clustered(30, 3, 8, 0), _clustered(5, 3, 8, 1)
    assert torch.equal(knn(query, bank, 4, index="IVF64,Flat")[1], knn(query, bank, 4)[1])


def test_bad_faiss_index_string_says_what_to_pass():
    with pytest.raises(ValueError, match="index factory string"):
        knn(torch.randn(3, 8), torch.randn(10, 8), 2, index="NotAnIndex")
