"""open_clip CLIP as the shared backbone: global and token features for images and texts."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

import tipr  # noqa: F401  (torchvision repair before open_clip)
import open_clip

from tipr.hub import require_hub
from tipr.models.weights import LAYOUT, has_weights, read_weights

CONFIG_DIR = Path(__file__).parent / "configs"
open_clip.add_model_config(CONFIG_DIR)  # makes the shipped tiny configs available by name, e.g. "tipr-tiny"
logger = logging.getLogger(__name__)


class Features(NamedTuple):
    """Global feature [B,d], token features [B,T,d] in the joint space, and the valid-token mask [B,T]."""

    global_: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor


@dataclass
class BackboneConfig:
    """Which CLIP to build. `name`: an open_clip model name, `hf-hub:org/repo`, or a JSON config file.

    `pretrained`: an open_clip tag (e.g. "openai"), a local checkpoint file, a saved tipr model folder (its
    backbone only), or None for random weights.
    """

    name: str = "ViT-B-16"
    pretrained: str | None = "openai"
    image_size: tuple[int, int] = (384, 128)
    context_length: int = 77
    model_cfg: dict | None = field(default=None, repr=False)  # an inline open_clip config (saved models)

    def to_dict(self) -> dict:
        return asdict(self) | {"image_size": list(self.image_size)}


def _needs_download(name: str, pretrained: str | None) -> bool:
    if name.startswith("hf-hub:"):
        return True
    return bool(pretrained) and not os.path.exists(pretrained)


def _tipr_model_folder(pretrained: str | None) -> Path | None:
    """The folder of a tipr model given as `pretrained`, if it is one (its weights in either layout)."""
    if pretrained and os.path.isdir(pretrained):
        if not has_weights(pretrained):
            raise FileNotFoundError(f"pretrained={pretrained!r} is a folder without model weights ({LAYOUT}); pass "
                                    "a tipr model folder saved by train/run.py or an open_clip checkpoint file")
        return Path(pretrained)
    return None


def _load_tipr_backbone(clip: nn.Module, folder: Path) -> None:
    """Initialise `clip` from the backbone of a saved tipr model (heads are left out)."""
    from open_clip.model import resize_pos_embed

    prefix = "backbone.clip."
    state = {k[len(prefix):]: v.float() for k, v in read_weights(folder).items() if k.startswith(prefix)}
    if not state:
        raise ValueError(f"{folder} holds no tipr backbone weights (no '{prefix}*' tensors)")
    resize_pos_embed(state, clip)
    clip.load_state_dict(state, strict=True)


def _cached_locally(name: str, pretrained: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    if name.startswith("hf-hub:"):
        repo = name[len("hf-hub:"):]
        return isinstance(try_to_load_from_cache(repo, "open_clip_config.json"), str)
    cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if not cfg:
        tags = ", ".join(t for m, t in open_clip.list_pretrained() if m == name) or "none"
        raise ValueError(f"unknown pretrained tag {pretrained!r} for {name!r}; known tags: {tags}")
    hub_id = cfg.get("hf_hub", "")
    if hub_id:
        repo, filename = os.path.split(hub_id.rstrip("/")) if not hub_id.endswith("/") else (hub_id.rstrip("/"), "")
        for candidate in [filename] if filename else ["open_clip_pytorch_model.bin", "open_clip_model.safetensors"]:
            if isinstance(try_to_load_from_cache(repo, candidate), str):
                return True
    return False


def _register_config_file(path: str) -> str:
    open_clip.add_model_config(path)
    return Path(path).stem


class _RandomInitNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


@contextmanager
def _quiet_random_init(asked: bool):
    """Drop open_clip's "initialized randomly" warning when no open_clip weights were asked for (a tipr model
    loads its own weights right after, or a test wants a random model)."""
    notice = _RandomInitNotice()
    if asked:
        logging.getLogger().addFilter(notice)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(notice)


def _create_clip(cfg: BackboneConfig) -> nn.Module:
    name = cfg.name
    if cfg.model_cfg is not None:
        name = "tipr-inline-" + hashlib.sha1(json.dumps(cfg.model_cfg, sort_keys=True).encode()).hexdigest()[:12]
        open_clip.factory._MODEL_CONFIGS[name] = cfg.model_cfg
    elif name.endswith(".json") and os.path.isfile(name):
        name = _register_config_file(name)
    pretrained = cfg.pretrained
    if _needs_download(name, pretrained) and not _cached_locally(name, pretrained):
        require_hub(
            f"open_clip weights {cfg.name!r} (pretrained={pretrained!r})",
            local_alternative="pass a local checkpoint file as pretrained (e.g. --pretrained /path/to/open_clip_model.safetensors)",
        )
    tipr_folder = _tipr_model_folder(pretrained)
    kwargs = dict(pretrained=None if tipr_folder else pretrained, force_image_size=tuple(cfg.image_size))
    if cfg.context_length != 77:
        kwargs["force_context_length"] = cfg.context_length
    with _quiet_random_init(kwargs["pretrained"] is None):
        clip = open_clip.create_model(name, **kwargs)
    if tipr_folder is not None:
        _load_tipr_backbone(clip, tipr_folder)
    return clip


class CLIPBackbone(nn.Module):
    """A CLIP whose towers return token features projected into the joint space (as IRRA does)."""

    def __init__(self, clip: nn.Module, *, tokenizer, config: BackboneConfig):
        super().__init__()
        if not hasattr(clip, "visual") or not hasattr(clip.visual, "_embeds"):
            raise TypeError(f"{config.name!r}: only open_clip ViT CLIP models are supported")
        self.clip = clip
        self.tokenizer = tokenizer
        self.config = config
        self.embed_dim = int(clip.text_projection.shape[1])

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(list(texts))

    def encode_image(self, images: torch.Tensor) -> Features:
        visual = self.clip.visual
        x = visual.transformer(visual._embeds(images))
        x = visual.ln_post(x)  # the standard CLIP ViT: ln_post on every token, CLS pooled
        if visual.proj is not None:
            x = x @ visual.proj
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        return Features(x[:, 0], x, mask)

    def encode_text(self, ids: torch.Tensor) -> Features:
        clip = self.clip
        x = clip.token_embedding(ids).to(clip.transformer.get_cast_dtype())
        x = x + clip.positional_embedding.to(x.dtype)
        x = clip.transformer(x, attn_mask=clip.attn_mask)
        x = clip.ln_final(x)
        x = x @ clip.text_projection
        eot = ids.argmax(dim=-1)  # CLIP's EOT token has the largest id
        mask = ids != 0
        return Features(x[torch.arange(x.shape[0], device=x.device), eot], x, mask)


def build_backbone(config: BackboneConfig | None = None, **overrides) -> CLIPBackbone:
    """Build the CLIP of `config` (fields may be overridden by keyword)."""
    config = BackboneConfig(**(asdict(config or BackboneConfig()) | overrides))
    config.image_size = tuple(config.image_size)
    clip = _create_clip(config)
    tokenizer_name = config.name if config.model_cfg is None else "ViT-B-16"
    if tokenizer_name.endswith(".json"):
        tokenizer_name = "ViT-B-16"
    tokenizer = open_clip.get_tokenizer(tokenizer_name, context_length=config.context_length)
    if config.model_cfg is None:
        config.model_cfg = _model_cfg_of(config.name)
    return CLIPBackbone(clip, tokenizer=tokenizer, config=config)


def _model_cfg_of(name: str) -> dict | None:
    """The open_clip config behind `name`, stored with saved models so they rebuild without the name."""
    if name.startswith("hf-hub:"):
        return None
    if name.endswith(".json") and os.path.isfile(name):
        name = Path(name).stem
    cfg = open_clip.get_model_config(name)
    return dict(cfg) if cfg else None
