"""GEA (Generation-Enhanced Alignment): TGTE, GIF and the triplet alignment loss; see docs/gea.md."""

from tipr.gea.config import GEAConfig
from tipr.gea.gif import GIF, FusionQuery, gif_loss, hard_negatives, rerank, rerank_top_k
from tipr.gea.tal import tal_from_scores, tal_loss
from tipr.gea.tgte import TGTE, eot_feature

__all__ = [
    "GEAConfig",
    "GIF",
    "FusionQuery",
    "TGTE",
    "eot_feature",
    "gif_loss",
    "hard_negatives",
    "rerank",
    "rerank_top_k",
    "tal_from_scores",
    "tal_loss",
]
