"""GenerationCache, prompt template, per-caption seeds and the cached Generator (with a fake pipeline)."""

import hashlib
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tipr.generation import PEDESTRIAN_TEMPLATE, GenerationCache, PromptTemplate, caption_seed
from tipr.generation.pipeline import Generator

BASE = dict(model="m", prompt="a man in a red shirt", seed=1, steps=4, size=(384, 128))


def seed_colour(seed: int) -> tuple[int, int, int]:
    return (seed % 251, (seed >> 8) % 251, (seed >> 16) % 251)


class FakePipe:
    """Paints each image with a colour derived from its generator's seed; counts calls and images."""

    def __init__(self):
        self.calls, self.images = 0, 0

    def __call__(self, prompts, *, generator, negative_prompt=None, **kwargs):
        self.calls += 1
        self.images += len(prompts)
        return SimpleNamespace(images=[Image.new("RGB", (16, 48), seed_colour(g.initial_seed())) for g in generator])


@pytest.mark.parametrize("change", [dict(model="m2"), dict(prompt="a man in a blue shirt"), dict(seed=2),
                                    dict(steps=5), dict(size=(256, 128)), dict(guidance_scale=0.0)])
def test_key_changes_with_every_setting(change):
    assert GenerationCache.key(**BASE) == GenerationCache.key(**dict(BASE))
    assert GenerationCache.key(**{**BASE, **change}) != GenerationCache.key(**BASE)


def test_put_get_roundtrip_sharded_and_atomic(tmp_path):
    cache = GenerationCache(tmp_path)
    key = cache.key(**BASE)
    assert cache.get(key) is None and key not in cache
    pixels = np.random.default_rng(0).integers(0, 256, (384, 128, 3), dtype=np.uint8)
    path = cache.put(key, Image.fromarray(pixels), metadata={"caption": "a man", "seed": 1})
    assert path == tmp_path / key[:2] / f"{key}.png" == cache.path_for(key)
    assert np.array_equal(np.asarray(cache.get(key)), pixels) and key in cache and len(cache) == 1
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{key}.png"]  # no temporary file left


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_file_is_a_miss_and_removed(tmp_path, damage):
    cache = GenerationCache(tmp_path)
    key = cache.key(**BASE)
    path = cache.put(key, Image.new("RGB", (128, 384), (200, 10, 10)))
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a png" * 10, "empty": b""}[damage])
    assert cache.get(key) is None and not path.exists()


def test_bad_key_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="hex digest"):
        GenerationCache(tmp_path).path_for("../../etc/passwd")


def test_caption_seed_is_a_stable_hash():
    expected = int.from_bytes(hashlib.sha256(b"0\x00a man").digest()[:8], "big") & (2**63 - 1)
    assert caption_seed("a man") == expected == caption_seed("a man", 0)
    assert len({caption_seed("a man", 1), caption_seed("a man"), caption_seed("a woman")}) == 3


def test_prompt_template():
    prompt = PEDESTRIAN_TEMPLATE.format("A man in a red shirt.")
    assert prompt.startswith("a full-body photo of a pedestrian, A man in a red shirt, street surveillance camera")
    assert PEDESTRIAN_TEMPLATE.negative
    with pytest.raises(ValueError, match="caption"):
        PromptTemplate("no slot")


def test_generate_cached_generates_only_misses(tmp_path):
    pipe, cache = FakePipe(), GenerationCache(tmp_path)
    gen = Generator(pipe, model_id="fake", steps=2)
    first = gen.generate_cached(["a", "b", "c"], cache, batch_size=2, progress=False)
    assert (pipe.calls, pipe.images, len(cache)) == (2, 3, 3)
    again = gen.generate_cached(["c", "a"], cache, progress=False)
    assert (pipe.calls, pipe.images) == (2, 3)  # all hits
    assert [np.asarray(x).tolist() for x in again] == [np.asarray(first[i]).tolist() for i in (2, 0)]
    assert first[0].size == (128, 384) and first[0].getpixel((0, 0)) == seed_colour(caption_seed("a"))
    gen.generate_cached(["a"], cache, seed_base=7, progress=False)  # another seed: another key
    gen.generate_cached(["a"], cache, steps=3, progress=False)  # other steps: another key
    assert (pipe.images, len(cache)) == (5, 5)


def test_generate_is_deterministic_per_caption():
    gen = Generator(FakePipe(), model_id="fake")
    alone = gen.generate(["b"], progress=False)[0]
    batched = gen.generate(["a", "b", "c"], batch_size=3, progress=False)[1]
    assert alone.tobytes() == batched.tobytes()
