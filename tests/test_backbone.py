import time

import pytest
import torch

from tipr.hub import HubUnreachableError
from tipr.models import BackboneConfig, build_backbone


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_backbone(name="tipr-tiny", pretrained=None, image_size=(128, 64)).eval()


def test_text_features_match_open_clip(tiny):
    ids = tiny.tokenize(["a woman in a red coat with a black backpack", "man"])
    feats = tiny.encode_text(ids)
    assert torch.allclose(feats.global_, tiny.clip.encode_text(ids), atol=1e-5)
    assert feats.mask.sum(1).tolist() == [(ids[0] != 0).sum().item(), 3]  # sot, "man", eot
    assert feats.tokens.shape == (2, 77, tiny.embed_dim)


def test_image_features_match_open_clip(tiny):
    images = torch.randn(2, 3, 128, 64)
    feats = tiny.encode_image(images)
    assert torch.allclose(feats.global_, tiny.clip.encode_image(images), atol=1e-5)
    assert torch.equal(feats.tokens[:, 0], feats.global_)  # CLS first
    assert feats.tokens.shape == (2, 1 + (128 // 16) * (64 // 16), tiny.embed_dim)


def test_local_checkpoint_resizes_positional_embedding(tmp_path, tiny):
    square = build_backbone(name="tipr-tiny", pretrained=None, image_size=(64, 64))
    path = tmp_path / "clip.pt"
    torch.save(square.clip.state_dict(), path)
    tall = build_backbone(name="tipr-tiny", pretrained=str(path), image_size=(128, 64))
    assert tall.clip.visual.positional_embedding.shape[0] == 1 + 8 * 4
    assert torch.equal(tall.clip.token_embedding.weight, square.clip.token_embedding.weight)
    # the class token's positional embedding is carried over unchanged
    assert torch.equal(tall.clip.visual.positional_embedding[0], square.clip.visual.positional_embedding[0])


@pytest.mark.parametrize("name,pretrained", [("ViT-B-16", "openai"), ("hf-hub:someone/missing-clip", None)])
def test_missing_weights_fail_fast_offline(monkeypatch, name, pretrained):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(HubUnreachableError) as err:
        build_backbone(BackboneConfig(name=name, pretrained=pretrained))
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert name in message and "HF_HUB_OFFLINE" in message and "local checkpoint" in message


def test_unknown_pretrained_tag():
    with pytest.raises(ValueError, match="known tags: .*openai"):
        build_backbone(BackboneConfig(name="ViT-B-16", pretrained="nonsense"))


def test_inline_config_rebuilds_same_architecture(tiny):
    rebuilt = build_backbone(BackboneConfig(name="whatever", pretrained=None, image_size=(128, 64), model_cfg=tiny.config.model_cfg))
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in tiny.state_dict().items()}


@pytest.mark.parametrize("max_shard_size", ["5GB", 2 * 2**20], ids=["one file", "sharded"])
def test_tipr_model_folder_as_pretrained(tmp_path, max_shard_size):
    from tipr.models.tipr_model import TIPRModel

    torch.manual_seed(1)
    model = TIPRModel(method="clip", backbone=dict(name="tipr-tiny", pretrained=None, image_size=[128, 64]))
    model.save_pretrained(tmp_path / "model", max_shard_size=max_shard_size)
    backbone = build_backbone(name="tipr-tiny", pretrained=str(tmp_path / "model"), image_size=(128, 64))
    for key, value in model.backbone.clip.state_dict().items():
        assert torch.equal(backbone.clip.state_dict()[key], value), key
    with pytest.raises(FileNotFoundError, match="without model weights"):
        build_backbone(name="tipr-tiny", pretrained=str(tmp_path), image_size=(128, 64))
