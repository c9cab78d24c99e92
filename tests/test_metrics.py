import numpy as np
import pytest
import torch

from tipr.metrics import format_table, rank_metrics


def brute_force(sim, qp, gp):
    r1 = r5 = r10 = ap = inp = 0.0
    n = 0
    for i in range(sim.shape[0]):
        order = sorted(range(sim.shape[1]), key=lambda j: (-sim[i, j], j))
        hits = [int(gp[j] == qp[i]) for j in order]
        if not any(hits):
            continue
        n += 1
        ranks = [r + 1 for r, h in enumerate(hits) if h]
        r1 += ranks[0] <= 1
        r5 += ranks[0] <= 5
        r10 += ranks[0] <= 10
        ap += np.mean([(c + 1) / r for c, r in enumerate(ranks)])
        inp += len(ranks) / ranks[-1]
    return {k: 100 * v / n for k, v in dict(R1=r1, R5=r5, R10=r10, mAP=ap, mINP=inp).items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("as_torch", [False, True])
def test_matches_brute_force(seed, as_torch):
    rng = np.random.default_rng(seed)
    sim = rng.normal(size=(30, 40)).round(1)  # rounding creates ties: order must stay stable
    qp, gp = rng.integers(0, 8, 30), rng.integers(0, 8, 40)
    expected = brute_force(sim, qp, gp)
    args = (torch.from_numpy(sim), torch.from_numpy(qp), torch.from_numpy(gp)) if as_torch else (sim, qp, gp)
    got = rank_metrics(*args)
    assert got == pytest.approx(expected, abs=1e-4)


def _irregular(seed):
    """Identities with 1 to 9 images, queries of absent identities, ties, several chunks of queries."""
    rng = np.random.default_rng(seed)
    people = int(rng.integers(2, 15))
    gp = np.repeat(np.arange(people), rng.integers(1, 10, people))
    rng.shuffle(gp)
    qp = rng.integers(0, people + 3, int(rng.integers(1, 60)))  # ids >= people have no image: left out
    qp[0] = gp[0]  # at least one query can be scored
    sim = rng.normal(size=(len(qp), len(gp))).round(int(rng.integers(0, 3)))  # coarse rounding: many ties
    return sim, qp, gp


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("chunk", [1, 7, 256])
def test_irregular_match_counts_across_chunks_match_brute_force(seed, chunk):
    sim, qp, gp = _irregular(seed)
    assert rank_metrics(sim, qp, gp, chunk=chunk) == pytest.approx(brute_force(sim, qp, gp), abs=1e-4)


def test_chunks_shrink_where_identities_have_many_images():
    sim, qp, gp = _irregular(3)
    expected = brute_force(sim, qp, gp)
    assert rank_metrics(sim, qp, gp, chunk=256, max_chunk_elements=1) == pytest.approx(expected, abs=1e-4)


def test_hand_example():
    sim = np.array([[0.5, 0.1, 0.9], [0.9, 0.2, 0.1]])
    m = rank_metrics(sim, [7, 3], [7, 7, 1])
    # gallery pids [7,7,1]: q0 (pid 7) order 2,0,1 -> hits at 2,3; q1 (pid 3) has no match -> ignored
    assert m["R1"] == 0.0 and m["R5"] == 100.0
    assert m["mAP"] == pytest.approx(100 * (1 / 2 + 2 / 3) / 2)
    assert m["mINP"] == pytest.approx(100 * 2 / 3)


def test_bad_shapes():
    with pytest.raises(ValueError, match="num_queries"):
        rank_metrics(np.zeros((2, 3)), [0, 1], [0, 1])
    with pytest.raises(ValueError, match="no query"):
        rank_metrics(np.zeros((1, 2)), [5], [0, 1])


def test_format_table():
    table = format_table({"a": dict(R1=1, R5=2, R10=3, mAP=4, mINP=5)})
    assert "| a | 1.00 | 2.00 | 3.00 | 4.00 | 5.00 |" in table
