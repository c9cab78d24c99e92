"""The README.md model card of a trained tipr model: Hub front matter, how it was trained, and its results."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tipr.metrics import format_table

DATASET_IDS = {"cuhk-pedes": "CUHK-PEDES", "icfg-pedes": "ICFG-PEDES", "rstpreid": "RSTPReid",
               "synthpedes": "SynthPEDES"}
METHOD_NAMES = {"clip": "CLIP baseline (two-tower, fine-tuned)",
                "ecca": "ECCA: Enhancing Cross-modal Completion and Alignment (unsupervised, incomplete modalities)",
                "gea": "GEA: Generation-Enhanced Alignment (TGTE + GIF, generated intermediate images)",
                "ecca+gea": "ECCA + GEA (ECCA's completion and alignment with GEA's generated images)"}


def public_path(value: Any) -> Any:
    """A local absolute path as its folder or file name: a card pushed to the Hub should not show the trainer's
    file system, and the path means nothing to a reader there."""
    return Path(value).name if isinstance(value, str | os.PathLike) and os.path.isabs(value) else value


def render_model_card(*, method: str, dataset: str, setting: str, hyperparameters: Mapping[str, Any],
                      results: Mapping[str, Mapping[str, float]], base_model: str | None = None) -> str:
    """Markdown with YAML front matter (library_name tipr, tags, datasets) and the metric table."""
    name = DATASET_IDS.get(dataset.lower(), dataset)
    meta: dict[str, Any] = {
        "library_name": "tipr",
        "license": "apache-2.0",
        "pipeline_tag": "zero-shot-image-classification",
        "tags": ["text-to-image-person-retrieval", "tipr", method.replace("+", "-"), "pytorch_model_hub_mixin"],
        "datasets": [name],
    }
    if base_model:
        meta["base_model"] = base_model
    rows = "\n".join(f"| `{k}` | `{public_path(v)}` |" for k, v in hyperparameters.items())
    table = format_table(dict(results)) if results else "_not evaluated_"
    return (
        f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n\n"
        f"# tipr {method} on {name} ({setting})\n\n"
        f"Text-to-image person retrieval: a sentence describing a pedestrian ranks a gallery of pedestrian "
        f"crops.\n\n- **Method**: {METHOD_NAMES.get(method, method)}\n- **Dataset**: {name}, "
        f"partition setting `{setting}`\n\n"
        f"## Use\n\n```python\nfrom tipr import load_model\n\nmodel = load_model(\"PATH_OR_REPO_ID\")\n"
        f"texts = model.encode_texts(model.tokenize([\"a woman in a red coat with a black bag\"]))\n"
        f"images = model.encode_images(batch)  # [B,3,H,W] through model.image_transform()\n"
        f"scores = texts @ images.T\n```\n\n"
        f"Evaluate: `python -m tipr.evaluate --model PATH_OR_REPO_ID --dataset {dataset} --data_root DATA`.\n\n"
        f"## Results\n\nText-to-image retrieval over the whole gallery, in percent.\n\n{table}\n\n"
        f"## Training\n\nTrained with `accelerate launch train/run.py`:\n\n| option | value |\n|---|---|\n{rows}\n"
    )


def write_model_card(folder: str | os.PathLike, **fields: Any) -> Path:
    """Write README.md into `folder` (arguments of render_model_card)."""
    path = Path(folder) / "README.md"
    path.write_text(render_model_card(**fields), encoding="utf-8")
    return path
