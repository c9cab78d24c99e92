"""GEA's intermediate images: prompt template, per-caption seed, disk cache, text-to-image pipelines."""

from tipr.generation.cache import GenerationCache, model_fingerprint
from tipr.generation.prompts import PEDESTRIAN_TEMPLATE, PLAIN_TEMPLATE, PromptTemplate, caption_seed

__all__ = ["GenerationCache", "model_fingerprint", "PromptTemplate", "PEDESTRIAN_TEMPLATE", "PLAIN_TEMPLATE",
           "caption_seed", "Generator", "GeneratorUnavailableError", "load_generator", "OUTPUT_SIZE"]


def __getattr__(name: str):
    # the pipeline module imports torch and diffusers: load it only when asked for
    if name in {"Generator", "GeneratorUnavailableError", "load_generator", "OUTPUT_SIZE"}:
        from tipr.generation import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'tipr.generation' has no attribute {name!r}")
