"""TIPRModel: the backbone plus the heads of the chosen method, saved and loaded like any Hub model."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from tipr.config import dataclass_from_dict
from tipr.ecca.config import ECCAConfig
from tipr.gea.config import GEAConfig
from tipr.hub import require_hub
from tipr.models.backbone import BackboneConfig, Features, build_backbone
from tipr.models.method import Method
from tipr.models.weights import (HUB_MAX_SHARD_SIZE, INDEX_FILE, LAYOUT, SINGLE_FILE, WEIGHT_PATTERNS,
                                 load_weights, save_weights, weight_files)


class TIPRModel(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="tipr",
    tags=["text-to-image-person-retrieval", "tipr"],
    repo_url="https://github.com/tipr-project/tipr",
    pipeline_tag="zero-shot-image-classification",
    license="apache-2.0",
):
    """A two-tower retrieval model: `encode_texts` and `encode_images` give L2-normalised features.

    `method` picks the heads: "clip" (none), "ecca" (prototype fusion + unified prototypes),
    "gea" (TGTE + GIF) or "ecca+gea" (both). Option dicts are the fields of ECCAConfig / GEAConfig.
    Heads a method or its switches leave out are None: `fusion`, `prototypes`, `tgte`, `gif`.
    """

    def __init__(self, *, method: str | Method = Method.CLIP, backbone: dict | None = None,
                 ecca: dict | None = None, gea: dict | None = None):
        super().__init__()
        self.method = method = Method.parse(method)
        self.backbone = build_backbone(dataclass_from_dict(BackboneConfig, backbone))
        dim = self.backbone.embed_dim
        saved_backbone = self.backbone.config.to_dict() | {"pretrained": None}  # weights live in the weight files
        self.ecca_config: ECCAConfig | None = None
        self.gea_config: GEAConfig | None = None
        for head in ("fusion", "prototypes", "tgte", "gif"):
            self.register_module(head, None)
        if method.uses_ecca:
            from tipr.ecca import PrototypeFusion, UnifiedPrototypes

            self.ecca_config = dataclass_from_dict(ECCAConfig, ecca)
            c = self.ecca_config
            self.fusion = (PrototypeFusion(dim=dim, num_prototypes=c.num_prototypes_s, heads=c.fusion_heads)
                           if c.use_prototype_fusion else None)
            self.prototypes = UnifiedPrototypes(num_prototypes=c.num_unified_prototypes, dim=dim)
        if method.uses_gea:
            from tipr.gea import GIF, TGTE

            self.gea_config = dataclass_from_dict(GEAConfig, gea)
            c = self.gea_config
            self.tgte = TGTE(dim=dim, heads=c.tgte_heads, layers=c.tgte_layers) if c.use_tgte else None
            self.gif = GIF(dim=dim, heads=c.gif_heads, layers=c.gif_layers) if c.use_gif else None
        if self._hub_mixin_config is not None:
            self._hub_mixin_config = {
                "method": method.value,
                "backbone": saved_backbone,
                "ecca": asdict(self.ecca_config) if self.ecca_config else None,
                "gea": asdict(self.gea_config) if self.gea_config else None,
            }

    # ----------------------------------------------------------------------------------------- files
    def save_pretrained(self, save_directory: str | os.PathLike, *, max_shard_size: int | str = HUB_MAX_SHARD_SIZE,
                        **kwargs) -> str | None:
        """The Hub mixin's save, weights in shards of at most `max_shard_size` (one model.safetensors if it fits)."""
        self._max_shard_size = max_shard_size  # the mixin's save_pretrained passes nothing on to _save_pretrained
        try:
            return super().save_pretrained(save_directory, **kwargs)
        finally:
            del self._max_shard_size

    def _save_pretrained(self, save_directory: Path) -> None:
        save_weights(self, save_directory, max_shard_size=getattr(self, "_max_shard_size", HUB_MAX_SHARD_SIZE))

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir: str | Path | None,
                         force_download: bool, local_files_only: bool, token: str | bool | None,
                         map_location: str = "cpu", strict: bool = False, **model_kwargs) -> "TIPRModel":
        """Build the model from its config and load its weights, from a folder or a Hub repo, in either layout."""
        folder = model_id
        if not os.path.isdir(model_id):
            from huggingface_hub import snapshot_download

            folder = snapshot_download(model_id, revision=revision, cache_dir=cache_dir, force_download=force_download,
                                       local_files_only=local_files_only, token=token, allow_patterns=WEIGHT_PATTERNS)
        model = cls(**model_kwargs)
        return load_weights(model, folder, strict=strict, map_location=map_location)

    # ----------------------------------------------------------------------------------------- features
    @property
    def uses_generated_images(self) -> bool:
        return self.tgte is not None or self.gif is not None

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        return self.backbone.tokenize(captions)

    def image_features(self, images: torch.Tensor) -> tuple[torch.Tensor, Features]:
        """Un-normalised image feature (after prototype fusion, if any) and the raw backbone features."""
        feats = self.backbone.encode_image(images)
        return self.fuse(feats), feats

    def generated_features(self, generated: torch.Tensor) -> Features:
        """Backbone features of GEA's generated images (the shared image encoder)."""
        return self.backbone.encode_image(generated)

    def text_features(self, ids: torch.Tensor, gen: Features | None = None,
                      has_generated: torch.Tensor | None = None) -> tuple[torch.Tensor, Features]:
        """Un-normalised text feature; with TGTE, tokens first attend to the generated image's tokens.

        Rows whose `has_generated` is False (no generated image) keep their plain text tokens.
        """
        feats = self.backbone.encode_text(ids)
        if self.tgte is not None and gen is not None:
            gen_mask = gen.mask if has_generated is None else gen.mask & has_generated.to(gen.mask.device)[:, None]
            tokens = self.tgte(feats.tokens, feats.mask, gen.tokens, gen_mask=gen_mask)
            from tipr.gea.tgte import eot_feature

            feats = Features(eot_feature(tokens, ids.argmax(dim=-1)), tokens, feats.mask)
        return self.fuse(feats), feats

    def fuse(self, feats: Features) -> torch.Tensor:
        """The global feature, after ECCA's prototype fusion over the tokens when the model has it."""
        if self.fusion is None:
            return feats.global_
        return self.fusion(feats.global_, feats.tokens, feats.mask)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_features(images)[0], dim=-1)

    def encode_texts(self, ids: torch.Tensor, generated: torch.Tensor | None = None,
                     has_generated: torch.Tensor | None = None) -> torch.Tensor:
        gen = None
        if generated is not None and self.tgte is not None:
            gen = self.generated_features(generated)
        return F.normalize(self.text_features(ids, gen, has_generated)[0], dim=-1)

    def image_transform(self, train: bool = False):
        from tipr.data.transforms import build_transform

        return build_transform(tuple(self.backbone.config.image_size), train=train)


def load_model(path_or_hub_id: str | os.PathLike, *, device: str | torch.device = "cpu") -> TIPRModel:
    """Load a tipr model from a `save_pretrained` folder or a Hub repo id (either weight layout), with clear errors."""
    path = Path(path_or_hub_id).expanduser()
    local = path.exists() or str(path_or_hub_id).startswith((".", "/", "~"))
    if local:
        if not path.is_dir():
            raise FileNotFoundError(f"model folder {path} does not exist (expected config.json + {LAYOUT})")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a tipr model folder: config.json is missing")
        weight_files(path)  # every file there; load_weights then checks each one is whole
    elif not _cached_on_hub(str(path_or_hub_id)):
        require_hub(f"tipr model {str(path_or_hub_id)!r}",
                    local_alternative="pass the path of a local model folder saved by train/run.py")
    model = TIPRModel.from_pretrained(str(path) if local else str(path_or_hub_id), strict=True,
                                      map_location=str(device))
    return model.float().eval()


def _cached_on_hub(repo_id: str) -> bool:
    """Whether the Hub cache holds the config and the weights (or their index) of `repo_id`."""
    from huggingface_hub import try_to_load_from_cache

    def cached(name: str) -> bool:
        return isinstance(try_to_load_from_cache(repo_id, name), str)

    return cached("config.json") and (cached(SINGLE_FILE) or cached(INDEX_FILE))
