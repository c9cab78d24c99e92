"""The study's start model: a tiny CLIP that stands to SynthPEDES as web CLIP stands to CUHK-PEDES.

Web CLIP has seen people, clothes and colours with alt-text ("woman in red coat") but never a person-retrieval
description binding hair, top, bottom, shoes and bag to one person; zero-shot it reaches CUHK-PEDES R1 near 12,
fine-tuned 60-76. The recipe: render SynthPEDES people that the benchmark never shows (another seed, so other
identities, clothes and backgrounds), caption every image with alt-text naming one or two visible attributes
(tipr.data.alt_text), and train the tiny CLIP from scratch on it with plain InfoNCE. See docs/study.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tipr.data.alt_text import write_alt_text_dataset
from tipr.study.runs import TrainRun


@dataclass
class StartModelRecipe:
    """How the start model is made; every field changes the run's cache key."""

    identities: int = 2000
    render_seed: int = 1  # the benchmark renders with seed 0: other people
    caption_seed: int = 0
    image_size: str = "128x64"
    epochs: int = 20
    train_batch_size: int = 64
    learning_rate: float = 5e-4

    def __post_init__(self) -> None:
        if self.identities < 3 or self.epochs < 1 or self.train_batch_size < 2:
            raise ValueError(f"StartModelRecipe needs identities >= 3, epochs >= 1 and train_batch_size >= 2, got "
                             f"{self.identities}, {self.epochs} and {self.train_batch_size}")


def ensure_synthpedes(folder: str | Path, *, identities: int, seed: int, image_size: str) -> Path:
    """SynthPEDES rendered once into `folder` (one process); its CUHK-PEDES folder. A different one there is an error."""
    import json

    from tipr.data.synthetic import generate_synthpedes

    folder = Path(folder)
    info = folder / "CUHK-PEDES" / "synthpedes.json"
    height, width = (int(v) for v in image_size.split("x"))
    if not info.is_file():
        generate_synthpedes(folder, identities=identities, seed=seed, image_size=(height, width), workers=1)
    made = json.loads(info.read_text())
    if (made["identities"], made["seed"], tuple(made["image_size"])) != (identities, seed, (height, width)):
        raise ValueError(f"{folder} holds SynthPEDES with {made['identities']} identities (seed {made['seed']}, "
                         f"{made['image_size']}), not {identities} (seed {seed}, {image_size}); use another folder")
    return info.parent


def start_model_run(work: str | Path, recipe: StartModelRecipe = StartModelRecipe()) -> TrainRun:
    """The start model's trainer run (data made here if missing); `.train()` it, then load its `output_dir`."""
    work = Path(work)
    renders = ensure_synthpedes(work / f"start-renders-{recipe.identities}-s{recipe.render_seed}",
                                identities=recipe.identities, seed=recipe.render_seed, image_size=recipe.image_size)
    data = write_alt_text_dataset(renders, work / f"start-alt-text-{recipe.identities}-s{recipe.render_seed}"
                                  f"-c{recipe.caption_seed}", seed=recipe.caption_seed)
    flags = ["--preset", "tiny", "--method", "clip", "--loss", "infonce", "--no-supervised", "--dataset",
             "cuhk-pedes", "--data_root", str(data), "--setting", "full", "--image_size", recipe.image_size,
             "--num_train_epochs", str(recipe.epochs), "--train_batch_size", str(recipe.train_batch_size),
             "--learning_rate", str(recipe.learning_rate), "--report_to", "none", "--validation_epochs", "0",
             "--no-eval_test"]
    return TrainRun("start model: tiny CLIP pretrained on alt-text of other renders", flags, work)
