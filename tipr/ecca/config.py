"""ECCAConfig: every ECCA hyper-parameter, loss weight and module switch in one dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tipr.config import dataclass_from_dict


@dataclass
class ECCAConfig:
    """ECCA settings; paper values where the paper gives one, our documented choice otherwise.

    Paper (Gong et al., IJCAI 2024): s = 400 fusion prototypes, k = 6, k' = 4, tau = 0.02 for
    eq. 19 and eq. 24, L = WIGA + EPGA + FMC.
    Not in the paper (ours, measured in docs/ecca.md): ``fusion_heads`` (8, the CLIP text width 512 / 64),
    ``alpha`` (0.8; the paper only says alpha in [0, 1] is the prior that v_i matches t_i),
    ``num_unified_prototypes`` K (256: a few times the batch of 64 so Sinkhorn's equipartition
    still spreads a batch over distinct prototypes; SwAV found K insensitive between 300 and
    3000), Sinkhorn 3 iterations with epsilon 0.01 = tau / 2 (SwAV's ratio 0.05 / 0.1: targets sharper
    than the predictions they train; epsilon 0.05 > tau made uniform codes a fixed point),
    ``fmc_temperature`` 0.05 (eq. 10's exp(cos) makes completion a plain mean) and ``w_fmc`` 0.1
    (at 1, L_FMC pulls every anchor toward other people's features and the embedding collapses into a cone).
    """

    # prototype fusion, eq. 1-2
    num_prototypes_s: int = 400
    fusion_heads: int = 8
    # HSNG / FMC, eq. 3-11
    k: int = 6
    k_prime: int = 4
    # WIGA, eq. 12-19
    alpha: float = 0.8
    tau: float = 0.02
    # EPGA, eq. 20-24 (tau shared with WIGA, as the paper sets both to 0.02)
    num_unified_prototypes: int = 256
    sinkhorn_iters: int = 3
    sinkhorn_epsilon: float = 0.01
    # FMC's affinity temperature: S_ij = exp(cos / T); eq. 10 is T = 1
    fmc_temperature: float = 0.05
    # how much a completed pair weighs as an anchor of WIGA and EPGA, against 1 for a complete pair; at 0 the
    # incomplete samples are only negatives of the others (the paper trains on completed pairs like complete ones)
    completed_weight: float = 1.0
    # epochs before completed pairs weigh anything, so that the bank's neighbours come from a model that has
    # first learned from the complete pairs (0: from the start, as in the paper)
    completion_warmup_epochs: int = 0
    # eq. 25
    w_wiga: float = 1.0
    w_epga: float = 1.0
    w_fmc: float = 0.1
    # switches for ablations: use_wiga_weights=False turns WIGA into plain InfoNCE (alpha = 1)
    use_prototype_fusion: bool = True
    use_hsng: bool = True
    use_fmc: bool = True
    use_wiga_weights: bool = True
    use_epga: bool = True
    # the feature bank for HSNG/FMC is recomputed every this many epochs
    bank_refresh_epochs: int = 1
    # its neighbour search: "Flat" (exact faiss on CPU), another faiss index factory string such as
    # "IVF1024,Flat" with knn_params "nprobe=16" (approximate: faster on CPU at CUHK-PEDES size, see
    # benchmarks/bench_hsng.py), or "torch" (exact dense products on the training device, for GPUs)
    knn_index: str = "Flat"
    knn_params: str = ""

    def __post_init__(self) -> None:
        positive_ints = ("num_prototypes_s", "fusion_heads", "k", "k_prime", "num_unified_prototypes",
                         "sinkhorn_iters", "bank_refresh_epochs")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ECCAConfig.{name} must be a positive integer, got {value!r}")
        if self.k_prime > self.k:
            raise ValueError(f"ECCAConfig.k_prime ({self.k_prime}) cannot exceed k ({self.k}): "
                             "the k' reliable neighbours are chosen among the k nearest")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"ECCAConfig.alpha must lie in [0, 1], got {self.alpha}")
        for name in ("tau", "sinkhorn_epsilon", "fmc_temperature"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ECCAConfig.{name} must be > 0, got {getattr(self, name)}")
        if not isinstance(self.knn_index, str) or not self.knn_index.strip():
            raise ValueError(f"ECCAConfig.knn_index must be 'torch' or a faiss index factory string such as 'Flat' "
                             f"or 'IVF1024,Flat', got {self.knn_index!r}")
        if not 0.0 <= self.completed_weight <= 1.0:
            raise ValueError(f"ECCAConfig.completed_weight must lie in [0, 1], got {self.completed_weight}")
        if not isinstance(self.completion_warmup_epochs, int) or self.completion_warmup_epochs < 0:
            raise ValueError("ECCAConfig.completion_warmup_epochs must be an integer >= 0, got "
                             f"{self.completion_warmup_epochs!r}")
        for name in ("w_wiga", "w_epga", "w_fmc"):
            if getattr(self, name) < 0:
                raise ValueError(f"ECCAConfig.{name} must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ECCAConfig":
        return dataclass_from_dict(cls, data)
