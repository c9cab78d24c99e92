"""Image features of many files: decoding in DataLoader workers, batches on the model's device, half precision
on a GPU, a progress bar in images per second. ``encode_pixels`` is the one way tipr embeds gallery images
(the app's encoder calls it too)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tipr.data.images import read_image

PRECISIONS = {"no": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def default_precision(device: torch.device) -> str:
    """bf16 on a GPU that has it, fp16 on other GPUs, full precision on a CPU."""
    if device.type != "cuda":
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


@torch.inference_mode()
def encode_pixels(model, pixels: torch.Tensor, *, precision: str = "no") -> np.ndarray:
    """L2-normalised image features [n, d] float32 of a batch of transformed images."""
    dtype = PRECISIONS[precision]
    device = next(model.parameters()).device
    autocast = (torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None
                else contextlib.nullcontext())
    with autocast:
        feats = model.encode_images(pixels.to(device, non_blocking=True))
    return torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy()


class ImageFiles(Dataset):
    """Decoded, transformed images by path; an unreadable file gives zeros and ``ok=False``, not an error."""

    def __init__(self, paths: Sequence[str], transform: Callable):
        self.paths, self.transform = list(paths), transform
        self._shape: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, bool]:
        try:
            pixels = self.transform(read_image(self.paths[i]))
        except OSError:  # UnreadableImage, FileNotFoundError: left out of the index and named in its manifest
            return torch.zeros(self._blank_shape()), False
        return pixels, True

    def _blank_shape(self) -> tuple[int, ...]:
        if self._shape is None:
            from PIL import Image

            self._shape = tuple(self.transform(Image.new("RGB", (32, 64))).shape)
        return self._shape


def embed_files(model, paths: Sequence[str], *, batch_size: int = 64, num_workers: int = 2,
                precision: str = "no", progress=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(features [b, d] float32, ok [b]) per batch of ``paths``, in order; ``progress.update(b)`` after each."""
    data = ImageFiles(paths, model.image_transform(train=False))
    device = next(model.parameters()).device
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    for pixels, ok in loader:
        feats = encode_pixels(model, pixels, precision=precision)
        ok = ok.numpy().astype(bool)
        feats[~ok] = 0.0
        if progress is not None:
            progress.update(len(ok))
        yield feats, ok
