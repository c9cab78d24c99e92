import pytest

import tipr  # noqa: F401
from tipr.gea import GEAConfig


def test_defaults_and_json_round_trip():
    cfg = GEAConfig(gif_layers=3, use_gif=False)
    assert (cfg.tal_tau, cfg.tal_margin, cfg.rerank_top_k) == (0.015, 0.1, 10)
    assert GEAConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("bad", [{"tal_tau": 0.0}, {"gif_hard_negatives": 0}, {"w_gif": -1.0}, {"prompt": "x"}])
def test_bad_values_are_rejected(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        GEAConfig.from_dict(bad)
