"""Load a text-to-image pipeline (Hub id or local folder, tipr's tiny one included) and turn captions into images."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import tipr  # noqa: F401  (repairs torchvision before diffusers imports it)

import torch
from PIL import Image
from tqdm.auto import tqdm

from tipr.generation.cache import GenerationCache, model_fingerprint
from tipr.generation.prompts import PEDESTRIAN_TEMPLATE, PLAIN_TEMPLATE, PromptTemplate, caption_seed
from tipr.hub import hub_offline

OUTPUT_SIZE = (384, 128)  # (height, width) of tipr's images
FEW_STEP_MARKERS = ("turbo", "lightning", "lcm", "hyper")


class GeneratorUnavailableError(RuntimeError):
    """The pipeline cannot be loaded here (not cached while offline, Hub unreachable, no such repo)."""


@dataclass
class FillStats:
    generated: int
    skipped: int
    seconds: float

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / self.generated if self.generated else 0.0


class Generator:
    """Captions -> images at `OUTPUT_SIZE`, one fixed seed per caption, in batches, optionally through a cache.

    `pipe` is any callable with diffusers' text-to-image signature returning `.images` (a list of PIL images).
    """

    def __init__(self, pipe: Callable[..., Any], *, model_id: str, fingerprint: str | None = None,
                 template: PromptTemplate = PEDESTRIAN_TEMPLATE, steps: int = 30, guidance_scale: float = 7.5,
                 native_size: tuple[int, int] | None = None):
        self.pipe = pipe
        self.model_id = model_id
        self.fingerprint = fingerprint or model_id
        self.template = template
        self.steps = steps
        self.guidance_scale = guidance_scale
        self.native_size = native_size  # (height, width) the pipeline renders at, before resizing
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)

    def __repr__(self) -> str:
        return (f"Generator({self.model_id!r}, steps={self.steps}, guidance_scale={self.guidance_scale}, "
                f"native_size={self.native_size})")

    def cache_key(self, caption: str, *, seed_base: int = 0, steps: int | None = None,
                  size: tuple[int, int] = OUTPUT_SIZE) -> str:
        return GenerationCache.key(
            model=self.fingerprint, prompt=self.template.format(caption), seed=caption_seed(caption, seed_base),
            steps=steps or self.steps, size=size, guidance_scale=float(self.guidance_scale),
            negative_prompt=self.template.negative, native_size=list(self.native_size or []))

    def generate(self, captions: Sequence[str], *, seed_base: int = 0, steps: int | None = None,
                 size: tuple[int, int] = OUTPUT_SIZE, batch_size: int = 8, progress: bool = True) -> list[Image.Image]:
        """One RGB image of `size` (height, width) per caption; a caption's image does not depend on its batch."""
        return list(self._batches(captions, seed_base=seed_base, steps=steps, size=size,
                                  batch_size=batch_size, progress=progress, flat=True))

    def _batches(self, captions, *, seed_base, steps, size, batch_size, progress, flat=False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        captions = list(captions)
        bar = tqdm(total=len(captions), desc="generating", unit="img", disable=not progress or not captions)
        kwargs: dict[str, Any] = {"num_inference_steps": steps or self.steps, "guidance_scale": self.guidance_scale}
        if self.native_size:
            kwargs["height"], kwargs["width"] = self.native_size
        with bar:
            for start in range(0, len(captions), batch_size):
                chunk = captions[start:start + batch_size]
                prompts = [self.template.format(c) for c in chunk]
                generators = [torch.Generator().manual_seed(caption_seed(c, seed_base)) for c in chunk]
                negative = [self.template.negative] * len(chunk) if self.template.negative else None
                images = self.pipe(prompts, negative_prompt=negative, generator=generators, **kwargs).images
                images = [_resize(im, size) for im in images]
                bar.update(len(chunk))
                if flat:
                    yield from images
                else:
                    yield chunk, images

    def fill_cache(self, captions: Sequence[str], cache: GenerationCache, *, seed_base: int = 0,
                   steps: int | None = None, size: tuple[int, int] = OUTPUT_SIZE, batch_size: int = 8,
                   progress: bool = True) -> FillStats:
        """Generate only the captions whose image is not cached; each batch is stored as soon as it is done."""
        keys = {c: self.cache_key(c, seed_base=seed_base, steps=steps, size=size) for c in dict.fromkeys(captions)}
        missing = [c for c, k in keys.items() if not cache.has(k)]
        start = time.perf_counter()
        for chunk, images in self._batches(missing, seed_base=seed_base, steps=steps, size=size,
                                           batch_size=batch_size, progress=progress):
            for caption, image in zip(chunk, images):
                cache.put(keys[caption], image, metadata={"model": self.model_id, "caption": caption,
                                                          "seed": caption_seed(caption, seed_base)})
        return FillStats(generated=len(missing), skipped=len(keys) - len(missing),
                         seconds=time.perf_counter() - start)

    def generate_cached(self, captions: Sequence[str], cache: GenerationCache, *, seed_base: int = 0,
                        steps: int | None = None, size: tuple[int, int] = OUTPUT_SIZE, batch_size: int = 8,
                        progress: bool = True) -> list[Image.Image]:
        """Like `generate`, reading hits from `cache` and generating (and storing) only the misses."""
        self.fill_cache(captions, cache, seed_base=seed_base, steps=steps, size=size, batch_size=batch_size,
                        progress=progress)
        images = [cache.get(self.cache_key(c, seed_base=seed_base, steps=steps, size=size)) for c in captions]
        if any(im is None for im in images):
            raise RuntimeError(f"images vanished from the cache at {cache.root} while reading them back")
        return images


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    height, width = size
    image = image.convert("RGB")
    return image if image.size == (width, height) else image.resize((width, height), Image.Resampling.BICUBIC)


def _unavailable(model_id: str, why: str) -> GeneratorUnavailableError:
    return GeneratorUnavailableError(
        f"cannot load the text-to-image model {model_id!r}: {why}. It is not in the local Hugging Face cache. "
        f"Either download it where the Hub is reachable (unset HF_HUB_OFFLINE, e.g. `hf download "
        f"{model_id}`) or pass a local pipeline folder instead (a diffusers save_pretrained folder, such as "
        f"tipr's tiny generator from `python train/train_generator.py --output_dir DIR`).")


def _hub_kwargs(model_id: str) -> dict[str, Any]:
    """Decide in seconds whether a Hub id can load: cached, or reachable; otherwise a clear error."""
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    cached = isinstance(try_to_load_from_cache(model_id, "model_index.json"), str)
    if hub_offline():
        if cached:
            return {"local_files_only": True}
        raise _unavailable(model_id, "HF_HUB_OFFLINE=1 is set")
    try:
        HfApi().model_info(model_id, timeout=10)
    except GatedRepoError as e:
        raise GeneratorUnavailableError(f"{model_id!r} is gated on the Hub: accept its licence and log in "
                                        f"(`hf auth login`), or pass a local folder ({e})") from e
    except RepositoryNotFoundError as e:
        raise GeneratorUnavailableError(f"no model {model_id!r} on the Hub (or it is private: log in); check the "
                                        f"id or pass a local pipeline folder") from e
    except Exception as e:  # network errors differ between httpx versions; any of them means "not reachable"
        if cached:
            return {"local_files_only": True}
        raise _unavailable(model_id, f"the Hub cannot be reached ({type(e).__name__}: {e}); set HF_HUB_OFFLINE=1 "
                                     f"to skip the network") from e
    return {}


def load_pipeline(id_or_dir: str | os.PathLike, *, dtype: torch.dtype = torch.float32):
    """The diffusers pipeline itself: tipr's tiny pipeline by its model_index.json, anything else by AutoPipeline."""
    from tipr.generation.tiny_pipeline import TiprTinyText2ImagePipeline

    path = Path(id_or_dir).expanduser()
    if path.is_dir():
        index = path / "model_index.json"
        if not index.is_file():
            raise FileNotFoundError(f"{path} has no model_index.json: it is not a diffusers pipeline folder "
                                    f"(save one with pipe.save_pretrained(DIR))")
        if json.loads(index.read_text()).get("_class_name") == TiprTinyText2ImagePipeline.__name__:
            return TiprTinyText2ImagePipeline.from_pretrained(path, dtype=dtype)
        return _auto_pipeline(path, dtype=dtype)
    model_id = str(id_or_dir)
    if model_id.startswith((".", "/", "~")) or model_id.count("/") > 1 or path.is_file():
        raise FileNotFoundError(f"no pipeline folder at {model_id!r} (and it is not a Hub id like owner/name)")
    return _auto_pipeline(model_id, dtype=dtype, **_hub_kwargs(model_id))


def _auto_pipeline(id_or_dir: str | Path, **kwargs: Any):
    from diffusers import AutoPipelineForText2Image

    try:
        return AutoPipelineForText2Image.from_pretrained(id_or_dir, **kwargs)
    except ImportError as e:
        raise ImportError(f"loading {id_or_dir!s} needs a library that is missing ({e}); "
                          f"`pip install -r requirements.txt` installs transformers for Stable Diffusion") from e


def _native_side(pipe: Any) -> int:
    """The square side a pipeline renders at by default (512 for SD 1.x/2.x, 1024 for SDXL)."""
    latent = getattr(pipe, "default_sample_size", None)
    if latent is None and getattr(pipe, "unet", None) is not None:
        latent = pipe.unet.config.sample_size
    if isinstance(latent, (tuple, list)):
        latent = latent[0]
    return int(latent or 64) * int(getattr(pipe, "vae_scale_factor", 8))


def default_settings(id_or_dir: str | os.PathLike, pipe: Any) -> dict[str, Any]:
    """Template, steps, guidance and render size that suit the pipeline kind."""
    from tipr.generation.tiny_pipeline import TiprTinyText2ImagePipeline

    if isinstance(pipe, TiprTinyText2ImagePipeline):
        return {"template": PLAIN_TEMPLATE, "steps": 20, "guidance_scale": 3.0,
                "native_size": tuple(pipe.unet.config.sample_size)}
    name = str(id_or_dir).lower()
    few_step = any(m in name for m in FEW_STEP_MARKERS)
    side = _native_side(pipe)
    # few-step models distilled with guidance built in take guidance 0; pedestrians are rendered tall (2:1)
    return {"template": PEDESTRIAN_TEMPLATE, "steps": 4 if few_step else 30,
            "guidance_scale": 0.0 if few_step else 7.5, "native_size": (side, side // 2)}


def load_generator(id_or_dir: str | os.PathLike, *, device: str | torch.device = "cpu",
                   dtype: torch.dtype | None = None, **overrides: Any) -> Generator:
    """A `Generator` for a Hub id or a local pipeline folder; `overrides` replace the defaults of
    `default_settings` (template, steps, guidance_scale, native_size)."""
    device = torch.device(device)
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    pipe = load_pipeline(id_or_dir, dtype=dtype).to(device)
    settings = {**default_settings(id_or_dir, pipe), **{k: v for k, v in overrides.items() if v is not None}}
    return Generator(pipe, model_id=str(id_or_dir), fingerprint=model_fingerprint(id_or_dir), **settings)
