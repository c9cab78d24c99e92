"""GIF re-ranking, one merge for evaluation and the app: the re-ranked top K sorted above the rest, also when
more than K results are asked for."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import tipr  # noqa: F401
from tipr.app.search import Searcher
from tipr.gea.config import GEAConfig
from tipr.gea.gif import GIF, FusionQuery, rerank_top_k
from tipr.models.backbone import Features

DIM = 16


def _gif(bias: float) -> GIF:
    torch.manual_seed(0)
    gif = GIF(dim=DIM, heads=2, layers=1).eval()
    with torch.no_grad():
        gif.head.bias.fill_(bias)  # negative: fused scores fall below the untouched cosines
    return gif


def _expected(gif, text, bank, base_scores, top_k, weight):
    """Independent ranking: top K by cosine, re-sorted by cosine + weight * GIF score, then the rest by cosine."""
    order = np.argsort(-base_scores, kind="stable")
    head, rest = order[:top_k], order[top_k:]
    fused = gif.score(text.expand(top_k, -1, -1), None, None, bank[torch.from_numpy(head)]).detach().numpy()
    final = base_scores[head] + weight * fused
    return np.concatenate([head[np.argsort(-final, kind="stable")], rest])


@pytest.mark.parametrize("queries, gallery, top_k, weight", [(1, 12, 4, 1.0), (3, 9, 9, 0.5), (2, 20, 1, 2.0)])
@pytest.mark.parametrize("bias", [-3.0, 3.0])
def test_rerank_top_k_lifts_the_reranked_candidates_above_the_rest(queries, gallery, top_k, weight, bias):
    gif = _gif(bias)
    g = torch.Generator().manual_seed(queries + gallery)
    text, bank = torch.randn(queries, 5, DIM, generator=g), torch.randn(gallery, 6, DIM, generator=g)
    scores = torch.rand(queries, gallery, generator=g)
    merged = rerank_top_k(gif, FusionQuery(text, None, None), scores, bank, top_k=top_k, weight=weight)
    for q in range(queries):
        ranking = torch.argsort(merged[q], descending=True, stable=True).numpy()
        expected = _expected(gif, text[q:q + 1], bank, scores[q].numpy(), top_k, weight)
        assert ranking.tolist() == expected.tolist()
        rest = expected[top_k:]
        assert torch.equal(merged[q, rest], scores[q, rest])  # past K: the two-tower scores, untouched
        assert merged[q, expected[:top_k]].min() > scores[q].max()


class _Index:
    def __init__(self, features: np.ndarray):
        self.image_features = features
        self.source = SimpleNamespace(image_paths=[f"/gallery/{i}.png" for i in range(len(features))],
                                      image_pids=list(range(len(features))))

    def __len__(self) -> int:
        return len(self.image_features)

    def search(self, queries: np.ndarray, k: int):
        scores = queries @ self.image_features.T
        rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, rows, 1), rows


class _Encoder:
    has_tgte, has_gif = False, True

    def __init__(self, gif, text_tokens, bank, top_k):
        self.model = SimpleNamespace(gif=gif, gea_config=GEAConfig(rerank_top_k=top_k, gif_heads=2))
        self.text_tokens, self.bank = text_tokens, bank
        self.feat = np.eye(DIM, dtype=np.float32)[0]

    def query(self, text, generated=None):
        return self.feat, Features(self.feat, self.text_tokens, torch.ones(1, 5, dtype=torch.bool)), None

    def image_tokens(self, paths, load):
        return self.bank[[int(p.split("/")[-1][:-4]) for p in paths]]


@pytest.mark.parametrize("k", [3, 4, 11, 20])
def test_app_gif_search_past_k_is_ordered_like_evaluation(k):
    top_k, gallery = 4, 20
    gif = _gif(-3.0)  # the old app code listed these re-ranked scores below the raw cosines that follow them
    g = torch.Generator().manual_seed(7)
    text, bank = torch.randn(1, 5, DIM, generator=g), torch.randn(gallery, 6, DIM, generator=g)
    features = torch.nn.functional.normalize(torch.randn(gallery, DIM, generator=g), dim=1).numpy()
    searcher = Searcher(_Encoder(gif, text, bank, top_k), _Index(features))
    result = searcher.search("a woman in a red coat", k=k, method="gif")
    scores = [h.score for h in result.hits]
    assert len(scores) == k and scores == sorted(scores, reverse=True)
    expected = _expected(gif, text, bank, features[:, 0], top_k, GEAConfig().rerank_weight)
    assert [h.row for h in result.hits] == expected[:k].tolist()
