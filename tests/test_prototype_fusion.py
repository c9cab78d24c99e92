import pytest
import torch

from tipr.ecca.prototype_fusion import PrototypeFusion


def _inputs(batch=3, tokens=5, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, tokens, dtype=torch.bool)
    mask[0, 3:] = False
    return torch.randn(batch, dim, generator=g), torch.randn(batch, tokens, dim, generator=g), mask


def _trained(fusion):
    torch.nn.init.normal_(fusion.proj.weight, std=0.1)
    return fusion


@pytest.mark.parametrize("use_mask", [False, True])
def test_zero_initialised_output_is_the_global_feature(use_mask):
    torch.manual_seed(0)
    fusion = PrototypeFusion(dim=16, num_prototypes=7, heads=4)
    global_, tokens, mask = _inputs()
    assert torch.equal(fusion(global_, tokens, mask if use_mask else None), global_)


def test_learns_from_tokens_at_start():
    torch.manual_seed(0)
    fusion = PrototypeFusion(dim=16, num_prototypes=7, heads=4)
    global_, tokens, mask = _inputs()
    fusion(global_, tokens, mask).pow(2).sum().backward()
    assert fusion.proj.weight.grad.abs().sum() > 0


def test_padded_tokens_do_not_matter():
    torch.manual_seed(0)
    fusion = _trained(PrototypeFusion(dim=16, num_prototypes=7, heads=4))
    global_, tokens, mask = _inputs()
    out = fusion(global_, tokens, mask)
    changed = tokens.clone()
    changed[0, 3:] = 100.0
    assert torch.allclose(fusion(global_, changed, mask), out, atol=1e-5)
    assert not torch.allclose(out, global_)


def test_row_without_valid_tokens_keeps_its_global_feature():
    torch.manual_seed(0)
    fusion = _trained(PrototypeFusion(dim=16, num_prototypes=7, heads=4))
    global_, tokens, mask = _inputs()
    mask[1] = False
    out = fusion(global_, tokens, mask)
    assert torch.isfinite(out).all()
    assert torch.equal(out[1], global_[1])


def test_bad_arguments():
    with pytest.raises(ValueError, match="divisible"):
        PrototypeFusion(dim=10, heads=4)
    fusion = PrototypeFusion(dim=16, num_prototypes=4, heads=4)
    with pytest.raises(ValueError, match="mask"):
        fusion(torch.randn(2, 16), torch.randn(2, 5, 16), torch.ones(2, 4, dtype=torch.bool))
