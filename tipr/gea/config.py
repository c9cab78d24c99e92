"""GEAConfig: every hyper-parameter, loss weight and switch of GEA's model side.

Generation (prompt template, sampler steps, seeds) is configured in `tipr.generation`, not here.
Defaults marked "ours" are the project's own choices: the GEA paper is available as its abstract only.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from tipr.config import dataclass_from_dict


@dataclass
class GEAConfig:
    """Hyper-parameters of TGTE, GIF and the triplet alignment loss (TAL).

    - ``tal_tau``, ``tal_margin``: TAL temperature and margin (RDE's values, also used for GIF's loss).
    - ``tgte_layers``, ``tgte_heads``: depth and heads of TGTE's gated cross-attention (ours: 1 layer, 8 heads).
    - ``gif_layers``, ``gif_heads``: depth and heads of GIF's fusion transformer (ours: 2 layers, 8 heads).
    - ``gif_hard_negatives``: hardest in-batch negatives per query used to train the fusion score (ours: 3).
    - ``rerank_top_k``: how many two-tower candidates GIF re-ranks at test time.
    - ``rerank_weight``: final score = two-tower cosine + ``rerank_weight`` * GIF score (ours: 1.0).
    - ``w_tal``, ``w_gif``: weights of the two-tower TAL and of GIF's TAL in the total loss.
    - ``use_tgte``, ``use_gif``: module switches (off = plain CLIP query feature / no fusion score).
    - ``generation_steps``: denoising steps of the intermediate images the model was trained on (0: the
      generator's own default); evaluation and the app generate query images the same way.
    """

    tal_tau: float = 0.015
    tal_margin: float = 0.1
    tgte_layers: int = 1
    tgte_heads: int = 8
    gif_layers: int = 2
    gif_heads: int = 8
    gif_hard_negatives: int = 3
    rerank_top_k: int = 10
    rerank_weight: float = 1.0
    w_tal: float = 1.0
    w_gif: float = 1.0
    use_tgte: bool = True
    use_gif: bool = True
    generation_steps: int = 0

    def __post_init__(self) -> None:
        checks = {
            "tal_tau": self.tal_tau > 0,
            "tal_margin": self.tal_margin >= 0,
            "tgte_layers": self.tgte_layers >= 1,
            "tgte_heads": self.tgte_heads >= 1,
            "gif_layers": self.gif_layers >= 1,
            "gif_heads": self.gif_heads >= 1,
            "gif_hard_negatives": self.gif_hard_negatives >= 1,
            "rerank_top_k": self.rerank_top_k >= 1,
            "rerank_weight": self.rerank_weight >= 0,
            "w_tal": self.w_tal >= 0,
            "w_gif": self.w_gif >= 0,
            "generation_steps": self.generation_steps >= 0,
        }
        bad = [f"{name}={getattr(self, name)!r}" for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"GEAConfig: invalid value(s) {', '.join(bad)}; tal_tau must be > 0, layer/head/negative/top-k "
                "counts >= 1, margin and weights >= 0"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GEAConfig:
        """Build from a dict (e.g. a saved model config); unknown keys are an error, missing keys take defaults."""
        return dataclass_from_dict(cls, values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GEAConfig:
        return cls.from_dict(json.loads(text))
