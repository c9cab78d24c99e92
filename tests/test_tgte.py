import pytest
import torch

import tipr  # noqa: F401
from tipr.gea.tgte import TGTE, eot_feature

DIM = 16


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(3, 5, DIM, generator=g)
    text_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    gen = torch.randn(3, 4, DIM, generator=g)
    gen_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)  # row 2: no image
    return text, text_mask, gen, gen_mask


def _open_gates(module, value=1.0):
    for layer in module.layers:
        layer.attn_gate.data.fill_(value)
        layer.ff_gate.data.fill_(value)


@pytest.mark.parametrize("layers", [1, 2])
def test_closed_gate_is_identity(layers):
    torch.manual_seed(0)
    tgte = TGTE(dim=DIM, heads=2, layers=layers)
    text, text_mask, gen, gen_mask = _inputs()
    assert torch.equal(tgte(text, text_mask, gen, gen_mask), text)
    assert torch.equal(tgte(text, None, gen), text)


def test_open_gate_changes_only_valid_tokens_of_samples_with_an_image():
    torch.manual_seed(0)
    tgte = TGTE(dim=DIM, heads=2, layers=1)
    _open_gates(tgte)
    text, text_mask, gen, gen_mask = _inputs()
    out = tgte(text, text_mask, gen, gen_mask)
    changed = (out - text).abs().amax(-1) > 1e-4
    expected = text_mask.clone()
    expected[2] = False  # no generated image -> passes through
    assert torch.equal(changed, expected)
    assert torch.equal(out[2], text[2]) and torch.equal(out[0, 3:], text[0, 3:])
    assert torch.isfinite(out).all()


def test_masked_generated_tokens_are_ignored():
    torch.manual_seed(0)
    tgte = TGTE(dim=DIM, heads=2)
    _open_gates(tgte, 0.5)
    text, text_mask, gen, gen_mask = _inputs()
    garbage = gen.clone()
    garbage[1, 2:] = 1e3  # masked positions of row 1
    assert torch.allclose(tgte(text, text_mask, gen, gen_mask), tgte(text, text_mask, garbage, gen_mask))


def test_gate_receives_gradient_at_initialisation():
    torch.manual_seed(0)
    tgte = TGTE(dim=DIM, heads=2)
    text, text_mask, gen, gen_mask = _inputs()
    tgte(text, text_mask, gen, gen_mask).pow(2).sum().backward()
    assert tgte.layers[0].attn_gate.grad.abs().item() > 0


def test_eot_feature_picks_token():
    tokens = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)
    out = eot_feature(tokens, torch.tensor([3, 1]))
    assert out.tolist() == [[9.0, 10.0, 11.0], [15.0, 16.0, 17.0]]


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t(torch.randn(2, 5, DIM), None, torch.randn(3, 4, DIM)),
        lambda t: t(torch.randn(2, 5, 8), None, torch.randn(2, 4, 8)),
        lambda t: t(torch.randn(2, 5, DIM), torch.ones(2, 4, dtype=torch.bool), torch.randn(2, 4, DIM)),
        lambda t: eot_feature(torch.randn(2, 4, DIM), torch.tensor([4, 0])),
        lambda t: TGTE(dim=DIM, heads=3),
    ],
)
def test_bad_input(call):
    with pytest.raises(ValueError):
        call(TGTE(dim=DIM, heads=2))
