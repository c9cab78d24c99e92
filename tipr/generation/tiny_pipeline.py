"""tipr's tiny offline text-to-image pipeline: a pixel-space conditional UNet, DDIM, and an open_clip text tower.

Saved and loaded like any diffusers pipeline (model_index.json, unet/, scheduler/, text_encoder/); the text
encoder is a small diffusers-compatible wrapper (ModelMixin + ConfigMixin) around the text half of an
open_clip model, so its token features condition the UNet's cross-attention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tipr  # noqa: F401  (repairs torchvision before open_clip / diffusers import it)

import numpy as np
import open_clip
import torch
from diffusers import DDIMScheduler, DiffusionPipeline, ImagePipelineOutput, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils.torch_utils import randn_tensor
from open_clip.model import CLIPTextCfg, _build_text_tower
from PIL import Image

CONFIG_DIR = Path(tipr.__file__).parent / "models" / "configs"
TINY_MODEL_NAME = "tipr-tiny"
SAMPLE_SIZE = (64, 32)  # (height, width): pedestrians are tall


POOLINGS = ("mean", "eot")


class TiprTextEncoder(ModelMixin, ConfigMixin):
    """The text tower of an open_clip config; returns per-token features [B, L, width] after the final norm.

    ``pooling`` says which single vector of them conditions the UNet globally (see `unet_conditioning`):
    "mean" of the real tokens, or "eot", the end-of-text token, which is what CLIP projects into the joint
    space and aligns with images (so a pretrained tower's EOT feature already says what the image shows).
    """

    @register_to_config
    def __init__(self, *, embed_dim: int = 128, text_cfg: dict[str, Any] | None = None, quick_gelu: bool = False,
                 pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        cfg = CLIPTextCfg(**{**(text_cfg or {}), "output_tokens": True})
        self.text = _build_text_tower(embed_dim, cfg, quick_gelu=quick_gelu)
        self._tokenizer = open_clip.SimpleTokenizer(context_length=cfg.context_length)

    @classmethod
    def from_open_clip(cls, model_name: str = TINY_MODEL_NAME, pretrained: str | None = None,
                       pooling: str = "mean") -> "TiprTextEncoder":
        """Text tower of `open_clip.create_model(model_name, pretrained)`; tipr's own configs are registered first.

        `pretrained` may also be a tipr model folder (config.json + its weights, as train/run.py saves):
        the text tower of its CLIP backbone is copied, and its open_clip config replaces `model_name`'s.
        """
        if pretrained is not None and is_tipr_model_folder(pretrained):
            from tipr.models.tipr_model import load_model

            backbone = load_model(pretrained).backbone
            model_cfg = backbone.config.model_cfg or open_clip.get_model_config(backbone.config.name)
            return cls._from_clip(backbone.clip, model_cfg, pooling)
        open_clip.add_model_config(CONFIG_DIR)
        model_cfg = open_clip.get_model_config(model_name)
        if model_cfg is None:
            raise ValueError(f"unknown open_clip model {model_name!r}; pick one of open_clip.list_models()")
        return cls._from_clip(open_clip.create_model(model_name, pretrained=pretrained), model_cfg, pooling)

    @classmethod
    def _from_clip(cls, clip: torch.nn.Module, model_cfg: dict[str, Any], pooling: str) -> "TiprTextEncoder":
        encoder = cls(embed_dim=model_cfg["embed_dim"], text_cfg=dict(model_cfg["text_cfg"]),
                      quick_gelu=bool(model_cfg.get("quick_gelu", False)), pooling=pooling)
        # a plain CLIP keeps its text tower as top-level attributes, a CustomTextCLIP as `.text`
        source = clip.text if hasattr(clip, "text") else clip
        own = encoder.text.state_dict()
        weights = {k: v for k, v in source.state_dict().items() if k in own}
        missing = sorted(k for k in own if k not in weights and k != "attn_mask")
        if missing:
            raise ValueError(f"the CLIP's text tower lacks {missing[:3]}...: not an open_clip text tower of this shape")
        encoder.text.load_state_dict(weights, strict=False)
        return encoder

    @property
    def width(self) -> int:
        return self.text.width

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        return self._tokenizer(prompts).to(self.device)

    def attention_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """1 for the tokens up to and including the end-of-text token, 0 for the padding after it."""
        eot = (input_ids == self._tokenizer.eot_token_id).int().argmax(dim=-1, keepdim=True)
        return (torch.arange(input_ids.shape[1], device=input_ids.device) <= eot).long()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.text(input_ids)[1]


def is_tipr_model_folder(path: str | Path) -> bool:
    """True for a folder saved by train/run.py (a tipr model), rather than an open_clip tag or checkpoint file."""
    path = Path(path)
    from tipr.models.weights import has_weights

    return path.is_dir() and (path / "config.json").is_file() and has_weights(path)


def build_tiny_unet(*, sample_size: tuple[int, int] = SAMPLE_SIZE, cross_attention_dim: int = 64,
                    block_out_channels: tuple[int, ...] = (16, 32, 64, 64)) -> UNet2DConditionModel:
    """A ~1.7M-parameter pixel-space UNet (64x32 -> 8x4) with cross-attention only at its two coarsest levels
    (16x8 and 8x4; 8x4 and 4x2 at sample_size (32, 16), what train/train_generator.py trains by default).

    Attention at 32x16 of a 64x32 UNet would double the cost of a training step on CPU for little gain.
    """
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=3, out_channels=3,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        block_out_channels=block_out_channels, layers_per_block=1, norm_num_groups=8,
        cross_attention_dim=cross_attention_dim, attention_head_dim=4,
        # one pooled caption feature also joins the time embedding (see `unet_conditioning`): a global path
        # from colour words to every block, learned far sooner than cross-attention from random text features
        class_embed_type="projection", projection_class_embeddings_input_dim=cross_attention_dim,
        # FiLM after the group norm: an added bias before it would mostly be normalised away at 2 channels a group
        resnet_time_scale_shift="scale_shift")


def build_tiny_scheduler() -> DDIMScheduler:
    # x0 ("sample") prediction learns a clean, caption-coloured figure within a CPU budget of ~1000 steps, where
    # v- and epsilon-prediction still give noise; "trailing" spacing keeps few-step sampling sane
    return DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="sample",
                         clip_sample=True, set_alpha_to_one=True, timestep_spacing="trailing")


def unet_conditioning(features: torch.Tensor, mask: torch.Tensor, pooling: str = "mean") -> dict[str, torch.Tensor]:
    """UNet keyword arguments from token features [B, L, D] and their mask [B, L]: cross-attention over the
    real tokens, and as the `class_labels` vector their mean ("mean") or the end-of-text token's ("eot", the
    last real token)."""
    if pooling == "eot":
        last = (mask.sum(1) - 1).clamp(min=0)
        pooled = features[torch.arange(len(features), device=features.device), last]
    else:
        weights = mask.to(features.dtype).unsqueeze(-1)
        pooled = (features * weights).sum(1) / weights.sum(1).clamp(min=1)
    return {"encoder_hidden_states": features, "encoder_attention_mask": mask, "class_labels": pooled}


class TiprTinyText2ImagePipeline(DiffusionPipeline):
    """Caption -> small RGB pedestrian image, with classifier-free guidance against the empty prompt."""

    model_cpu_offload_seq = "text_encoder->unet"

    def __init__(self, unet: UNet2DConditionModel, scheduler: DDIMScheduler, text_encoder: TiprTextEncoder):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, text_encoder=text_encoder)

    @classmethod
    def from_scratch(cls, *, seed: int = 0, text_model: str = TINY_MODEL_NAME, text_pretrained: str | None = None,
                     sample_size: tuple[int, int] = SAMPLE_SIZE, pooling: str = "mean") -> "TiprTinyText2ImagePipeline":
        """Randomly initialised UNet (from `seed`, rendering `sample_size` (height, width)) and the text tower of
        open_clip's `text_model` with `text_pretrained` weights (an open_clip tag or file, or a tipr model folder),
        pooled for the UNet's global conditioning by `pooling` ("mean" or "eot")."""
        torch.manual_seed(seed)
        text_encoder = TiprTextEncoder.from_open_clip(text_model, text_pretrained, pooling)
        unet = build_tiny_unet(sample_size=tuple(sample_size), cross_attention_dim=text_encoder.width)
        return cls(unet=unet, scheduler=build_tiny_scheduler(), text_encoder=text_encoder)

    def save_pretrained(self, save_directory: str | Path, **kwargs: Any) -> None:
        """Like any pipeline's, with the text encoder stored in fp16: its 49408-row token table stays under 10 MB."""
        dtype = self.text_encoder.dtype
        self.text_encoder.half()
        try:
            super().save_pretrained(save_directory, **kwargs)
        finally:
            self.text_encoder.type(dtype)

    def encode_prompt(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token features [B, L, width] and the mask [B, L] that hides the padding from cross-attention."""
        ids = self.text_encoder.tokenize(prompts)
        return self.text_encoder(ids).to(self.unet.dtype), self.text_encoder.attention_mask(ids)

    @torch.no_grad()
    def __call__(self, prompt: str | list[str], *, negative_prompt: str | list[str] | None = None,
                 num_inference_steps: int = 20, guidance_scale: float = 3.0,
                 generator: torch.Generator | list[torch.Generator] | None = None,
                 height: int | None = None, width: int | None = None,
                 output_type: str = "pil", return_dict: bool = True) -> ImagePipelineOutput | tuple:
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise ValueError("prompt is empty: pass one caption or a list of captions")
        sample = self.unet.config.sample_size
        height, width = height or sample[0], width or sample[1]
        cond, mask = self.encode_prompt(prompts)
        use_cfg = guidance_scale > 1.0
        if use_cfg:
            negative = negative_prompt if negative_prompt is not None else ""
            negatives = [negative] * len(prompts) if isinstance(negative, str) else list(negative)
            uncond, uncond_mask = self.encode_prompt(negatives)
            cond, mask = torch.cat([uncond, cond]), torch.cat([uncond_mask, mask])
        shape = (len(prompts), self.unet.config.in_channels, height, width)
        x = randn_tensor(shape, generator=generator, device=self._execution_device, dtype=self.unet.dtype)
        self.scheduler.set_timesteps(num_inference_steps, device=x.device)
        for t in self.progress_bar(self.scheduler.timesteps):
            model_in = torch.cat([x, x]) if use_cfg else x
            out = self.unet(model_in, t, **unet_conditioning(cond, mask, self.text_encoder.config.pooling)).sample
            if use_cfg:
                uncond, text = out.chunk(2)
                out = uncond + guidance_scale * (text - uncond)
            x = self.scheduler.step(out, t, x).prev_sample
        images = (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()
        if output_type == "pil":
            images = [Image.fromarray(np.round(im * 255).astype(np.uint8)) for im in images]
        return ImagePipelineOutput(images=images) if return_dict else (images,)
