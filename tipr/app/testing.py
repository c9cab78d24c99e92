"""Random-init tiny stand-ins for the app's assets (model, gallery, generator), for tests and quick tries:
they exercise every path of the app in seconds, though their rankings mean nothing."""

from __future__ import annotations

import os
from pathlib import Path

import tipr  # noqa: F401  (repairs torchvision first)

import torch

TINY_HEADS = {"ecca": {"num_prototypes_s": 16, "fusion_heads": 2, "num_unified_prototypes": 16},
              "gea": {"tgte_heads": 2, "gif_heads": 2, "gif_layers": 1, "rerank_top_k": 8}}


def build_random_model(out: str | os.PathLike, *, seed: int = 0, image_size: tuple[int, int] = (128, 64)) -> Path:
    """A random-init tiny ECCA+GEA model in save_pretrained format, TGTE's gates opened so GEA moves rankings."""
    from tipr.models.tipr_model import TIPRModel

    torch.manual_seed(seed)
    model = TIPRModel(method="ecca+gea", backbone={"name": "tipr-tiny", "pretrained": None,
                                                  "image_size": list(image_size)}, **TINY_HEADS)
    with torch.no_grad():
        for name, param in model.tgte.named_parameters():
            if name.endswith("_gate"):
                param.fill_(1.0)
    model.save_pretrained(out)
    return Path(out)


def build_random_assets(out: str | os.PathLike, *, identities: int = 40, captionless: float = 0.25,
                        seed: int = 0) -> dict[str, Path]:
    """``out/model``, ``out/gallery`` (SynthPEDES test split with captionless images) and ``out/generator``."""
    from tipr.app.gallery_export import write_gallery
    from tipr.data.synthetic import generate_synthpedes
    from tipr.generation.tiny_pipeline import TiprTinyText2ImagePipeline

    out = Path(out)
    dataset = generate_synthpedes(out / "synthpedes", identities=identities, image_size=(128, 64), seed=seed,
                                  workers=1, overwrite=True)
    paths = {"model": build_random_model(out / "model", seed=seed),
             "gallery": write_gallery(dataset.parent, out / "gallery", captionless=captionless, seed=seed),
             "generator": out / "generator", "dataset": dataset.parent}
    TiprTinyText2ImagePipeline.from_scratch(seed=seed).save_pretrained(paths["generator"])
    return paths
