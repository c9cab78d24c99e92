import json
from dataclasses import asdict

import pytest

from tipr.ecca.config import ECCAConfig


def test_paper_defaults_and_json_round_trip():
    config = ECCAConfig()
    assert (config.num_prototypes_s, config.k, config.k_prime, config.tau) == (400, 6, 4, 0.02)
    assert ECCAConfig.from_dict(json.loads(json.dumps(asdict(config)))) == config


@pytest.mark.parametrize("bad", [{"alpha": 1.5}, {"k": 0}, {"k_prime": 7}, {"tau": 0.0}, {"w_fmc": -1.0},
                                 {"sinkhorn_iters": 2.5}, {"completed_weight": 1.5}, {"completed_weight": -0.1},
                                 {"completion_warmup_epochs": -1}, {"completion_warmup_epochs": 1.5}])
def test_invalid_values_are_rejected(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        ECCAConfig(**bad)


def test_unknown_key_is_named():
    with pytest.raises(ValueError, match="unknown keys \\['tau2'\\]"):
        ECCAConfig.from_dict({"tau2": 0.1})
