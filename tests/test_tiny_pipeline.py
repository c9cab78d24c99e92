"""tipr's tiny text-to-image pipeline (random weights) and load_generator: folders, round trips, offline errors."""

import json
import time

import huggingface_hub.constants
import numpy as np
import pytest
import torch

import tipr.generation.pipeline as pipeline_module
from tipr.generation import PLAIN_TEMPLATE, model_fingerprint
from tipr.generation.pipeline import GeneratorUnavailableError, load_generator
from tipr.generation.tiny_pipeline import TiprTinyText2ImagePipeline, unet_conditioning

CAPTIONS = ["a woman in a red coat and black trousers", "a man in a green shirt"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    pipe = TiprTinyText2ImagePipeline.from_scratch(seed=0)
    folder = tmp_path_factory.mktemp("tiny") / "generator"
    pipe.save_pretrained(folder)
    pipe.text_encoder.half().float()  # the saved copy holds fp16 text weights
    pipe.set_progress_bar_config(disable=True)
    return pipe, folder


def sample(pipe, prompts, seed=0, **kwargs):
    generators = [torch.Generator().manual_seed(seed + i) for i in range(len(prompts))]
    return pipe(prompts, num_inference_steps=3, generator=generators, output_type="np", **kwargs).images


def test_saved_folder_layout_and_sizes(saved):
    _, folder = saved
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "TiprTinyText2ImagePipeline"
    assert index["text_encoder"] == ["tipr.generation.tiny_pipeline", "TiprTextEncoder"]
    sizes = {p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()}
    assert {"unet/config.json", "scheduler/scheduler_config.json", "text_encoder/config.json"} <= set(sizes)
    assert max(sizes.values()) < 10 * 2**20, sizes


def test_load_generator_roundtrip(saved):
    pipe, folder = saved
    generator = load_generator(folder)
    assert isinstance(generator.pipe, TiprTinyText2ImagePipeline)
    assert generator.pipe.text_encoder.dtype == torch.float32
    assert (generator.template, generator.native_size) == (PLAIN_TEMPLATE, (64, 32))
    np.testing.assert_allclose(sample(generator.pipe, CAPTIONS), sample(pipe, CAPTIONS), atol=1e-5)

    images = generator.generate(CAPTIONS, steps=2, batch_size=1, progress=False)
    assert [im.size for im in images] == [(128, 384)] * 2
    again = generator.generate(CAPTIONS[::-1], steps=2, batch_size=2, progress=False)[::-1]
    diff = [np.abs(np.asarray(a, int) - np.asarray(b, int)).max() for a, b in zip(images, again)]
    assert max(diff) <= 2  # same caption, same seed: same image whatever the batch (up to float rounding)
    assert np.abs(np.asarray(images[0], int) - np.asarray(images[1], int)).mean() > 5


def test_guidance_and_prompt_change_the_output(saved):
    pipe, _ = saved
    plain = sample(pipe, CAPTIONS[:1], guidance_scale=1.0)
    assert not np.allclose(plain, sample(pipe, CAPTIONS[:1], guidance_scale=5.0))
    assert not np.allclose(plain, sample(pipe, CAPTIONS[1:], guidance_scale=1.0))
    assert plain.shape == (1, 64, 32, 3) and 0 <= plain.min() <= plain.max() <= 1


@pytest.mark.parametrize("prompt,length", [("", 2), ("a man", 4), ("a man in a red coat", 8)])
def test_padding_is_masked_and_pooled_out(saved, prompt, length):
    pipe, _ = saved
    features, mask = pipe.encode_prompt([prompt])
    assert mask.tolist() == [[1] * length + [0] * (77 - length)]
    pooled = unet_conditioning(features, mask)["class_labels"]
    torch.testing.assert_close(pooled, features[:, :length].mean(1))
    eot = unet_conditioning(features, mask, "eot")["class_labels"]  # the end-of-text token, CLIP's sentence feature
    torch.testing.assert_close(eot, features[:, length - 1])


def test_fingerprint_follows_the_weights(saved, tmp_path):
    pipe, folder = saved
    assert model_fingerprint(folder) == model_fingerprint(folder) != model_fingerprint("owner/model")
    with torch.no_grad():
        pipe.unet.conv_out.bias.add_(1.0)
        pipe.save_pretrained(tmp_path / "generator")
        pipe.unet.conv_out.bias.sub_(1.0)
    assert model_fingerprint(tmp_path / "generator") != model_fingerprint(folder)


@pytest.fixture
def empty_hub_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))


def test_offline_hub_id_fails_fast(monkeypatch, empty_hub_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    with pytest.raises(GeneratorUnavailableError) as error:
        load_generator("stabilityai/sd-turbo")
    assert time.perf_counter() - start < 10
    message = str(error.value)
    assert "stabilityai/sd-turbo" in message and "HF_HUB_OFFLINE" in message and "local" in message


def test_unreachable_hub_fails_fast(monkeypatch, empty_hub_cache):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def unreachable(self, repo_id, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", unreachable)
    with pytest.raises(GeneratorUnavailableError, match="cannot be reached.*HF_HUB_OFFLINE"):
        pipeline_module.load_pipeline("owner/some-model")


@pytest.mark.parametrize("where,error,match", [("./no/such/folder", FileNotFoundError, "no pipeline folder"),
                                               ("empty_dir", FileNotFoundError, "model_index.json")])
def test_bad_local_folders(tmp_path, where, error, match):
    (tmp_path / "empty_dir").mkdir()
    target = tmp_path / where if where == "empty_dir" else where
    with pytest.raises(error, match=match):
        load_generator(target)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # diffusers' Euler scheduler
def test_stable_diffusion_folder_loads_through_autopipeline(tmp_path):
    """A (tiny, random) Stable Diffusion folder takes diffusers' AutoPipeline path with the pedestrian template."""
    transformers = pytest.importorskip("transformers")
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel

    words = ["<|startoftext|>", "<|endoftext|>"] + [w + "</w>" for w in "a man in red shirt".split()]
    (tmp_path / "vocab.json").write_text(json.dumps({w: i for i, w in enumerate(words)}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    torch.manual_seed(0)
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(block_out_channels=(8, 16), norm_num_groups=4, latent_channels=4,
                          down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2),
        text_encoder=transformers.CLIPTextModel(transformers.CLIPTextConfig(
            vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1)),
        tokenizer=transformers.CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"),
                                                 model_max_length=77),
        unet=UNet2DConditionModel(sample_size=8, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                                  down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                  up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                  attention_head_dim=2),
        scheduler=EulerDiscreteScheduler(steps_offset=1), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.save_pretrained(tmp_path / "sd")
    generator = load_generator(tmp_path / "sd", steps=1)
    assert type(generator.pipe).__name__ == "StableDiffusionPipeline"
    assert (generator.native_size, generator.guidance_scale) == ((16, 8), 7.5)
    assert generator.template.format("a man").startswith("a full-body photo of a pedestrian, a man")
    images = generator.generate(["a man in red shirt"], progress=False)
    assert images[0].size == (128, 384)


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """A tipr model folder (what train/run.py and assets/build.py's pretrain stage save) with random weights."""
    from tipr.models.tipr_model import TIPRModel

    torch.manual_seed(1)
    model = TIPRModel(method="clip", backbone={"name": "tipr-tiny", "pretrained": None, "image_size": [64, 32]})
    folder = tmp_path_factory.mktemp("clip") / "pretrain-run"
    model.save_pretrained(folder)
    return folder, model.backbone.clip


def test_text_tower_from_a_tipr_model_folder(clip_folder):
    folder, clip = clip_folder
    pipe = TiprTinyText2ImagePipeline.from_scratch(seed=0, text_pretrained=str(folder), sample_size=(32, 16))
    text = pipe.text_encoder.text
    for name in ("token_embedding.weight", "positional_embedding", "transformer.resblocks.2.attn.in_proj_weight",
                 "ln_final.weight"):
        assert torch.equal(text.state_dict()[name], clip.state_dict()[name]), name
    ids = pipe.text_encoder.tokenize(CAPTIONS)
    with torch.no_grad():  # the same token features as the CLIP's own text tower, before its projection
        x = clip.token_embedding(ids) + clip.positional_embedding
        expected = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask))
        np.testing.assert_allclose(pipe.text_encoder(ids).numpy(), expected.numpy(), atol=1e-5)
    scratch = TiprTinyText2ImagePipeline.from_scratch(seed=0)
    assert not torch.equal(scratch.text_encoder.text.token_embedding.weight, text.token_embedding.weight)
    assert tuple(pipe.unet.config.sample_size) == (32, 16)
    pipe.set_progress_bar_config(disable=True)
    assert sample(pipe, CAPTIONS[:1]).shape == (1, 32, 16, 3)


def test_text_tower_rejects_a_mismatched_clip(clip_folder):
    from tipr.generation.tiny_pipeline import TiprTextEncoder

    _, clip = clip_folder
    with pytest.raises(ValueError, match="lacks"):
        TiprTextEncoder._from_clip(torch.nn.Linear(2, 2), {"embed_dim": 128, "text_cfg": {"width": 64}}, "mean")
