"""A method is a value: which heads it builds, and the model saying which heads it has."""

import pytest

import tipr  # noqa: F401
from tipr.models.method import METHODS, Method
from tipr.models.tipr_model import TIPRModel

TINY = {"name": "tipr-tiny", "pretrained": None, "image_size": [64, 32]}
SMALL = {"ecca": {"num_prototypes_s": 4, "fusion_heads": 2, "num_unified_prototypes": 4},
         "gea": {"tgte_heads": 2, "gif_heads": 2, "gif_layers": 1}}


@pytest.mark.parametrize("name, ecca, gea", [("clip", False, False), ("ecca", True, False), ("gea", False, True),
                                             ("ecca+gea", True, True)])
def test_method_says_what_it_uses_and_the_model_what_it_has(name, ecca, gea):
    method = Method.parse(name)
    assert (method.uses_ecca, method.uses_gea) == (ecca, gea) and method == name and f"{method}" == name
    model = TIPRModel(method=name, backbone=TINY, ecca=SMALL["ecca"] if ecca else None,
                      gea=SMALL["gea"] if gea else None)
    assert model.method is method
    assert (model.fusion is not None, model.prototypes is not None) == (ecca, ecca)
    assert (model.tgte is not None, model.gif is not None, model.uses_generated_images) == (gea, gea, gea)
    assert (model.ecca_config is not None, model.gea_config is not None) == (ecca, gea)


def test_switched_off_heads_are_none_and_unknown_methods_list_the_choices():
    model = TIPRModel(method="gea", backbone=TINY, gea=SMALL["gea"] | {"use_gif": False})
    assert model.tgte is not None and model.gif is None and model.uses_generated_images
    assert METHODS == ("clip", "ecca", "gea", "ecca+gea")
    with pytest.raises(ValueError, match="unknown method 'ecca-gea'; choose one of clip, ecca, gea, ecca\\+gea"):
        TIPRModel(method="ecca-gea", backbone=TINY)
