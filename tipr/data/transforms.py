"""Image transforms: the field's recipe (IRRA) at 384x128 with CLIP normalisation, on PIL images."""

from __future__ import annotations

import torchvision.transforms as T  # importing tipr (our parent package) already repaired torchvision

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def build_transform(image_size: tuple[int, int] = (384, 128), train: bool = False) -> T.Compose:
    """PIL RGB image -> normalised float tensor [3, H, W] for ``image_size = (H, W)``.

    Train: bicubic resize, horizontal flip, 10-pixel pad + random crop, CLIP normalisation, random erasing
    (filled with the CLIP mean, as IRRA does). Test: bicubic resize and CLIP normalisation only.
    """
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(isinstance(s, int) and s > 0 for s in image_size)):
        raise ValueError(f"image_size must be (height, width) in pixels, e.g. (384, 128); got {image_size!r}")
    size = tuple(image_size)
    resize = T.Resize(size, interpolation=T.InterpolationMode.BICUBIC)
    normalize = T.Normalize(mean=CLIP_MEAN, std=CLIP_STD)
    if not train:
        return T.Compose([resize, T.ToTensor(), normalize])
    return T.Compose([
        resize,
        T.RandomHorizontalFlip(0.5),
        T.Pad(10),
        T.RandomCrop(size),
        T.ToTensor(),
        normalize,
        T.RandomErasing(scale=(0.02, 0.4), value=list(CLIP_MEAN)),
    ])
