"""Prompt template around a caption, and a fixed seed per caption (stable across runs and machines)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class PromptTemplate:
    """`template` holds one `{caption}` slot; `negative` is the negative prompt (empty: none)."""

    template: str
    negative: str = ""

    def __post_init__(self) -> None:
        if "{caption}" not in self.template:
            raise ValueError(f"prompt template {self.template!r} has no {{caption}} slot; add one")

    def format(self, caption: str) -> str:
        return self.template.format(caption=caption.strip().rstrip("."))


# for general text-to-image models (Stable Diffusion, SD-Turbo, ...): a full-body pedestrian crop like a ReID gallery
PEDESTRIAN_TEMPLATE = PromptTemplate(
    template="a full-body photo of a pedestrian, {caption}, street surveillance camera, standing, whole body visible,"
             " plain background, realistic",
    negative="cropped, close-up, portrait, headshot, multiple people, text, watermark, cartoon, blurry, deformed",
)
# tipr's tiny pipeline is trained on the bare captions
PLAIN_TEMPLATE = PromptTemplate(template="{caption}")


def caption_seed(caption: str, base_seed: int = 0) -> int:
    """A seed from sha256 of (base seed, caption): unlike hash(), identical in every process."""
    digest = hashlib.sha256(f"{base_seed}\x00{caption}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & MAX_SEED
