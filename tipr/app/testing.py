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


def zip_bomb(path: str | os.PathLike, size: int, member: str = "zeros.png") -> Path:
    """A zip holding one member of ``size`` zero bytes (deflate packs them about 1000:1), written in chunks."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open(member, "w", force_zip64=True) as dst:
        block = bytes(1 << 20)
        for start in range(0, size, len(block)):
            dst.write(block[:size - start])
    return Path(path)


def flat_png(path: str | os.PathLike, width: int, height: int) -> Path:
    """A black RGB PNG of width x height, written row by row: a huge image in a small file."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pack, row = zlib.compressobj(9), bytes(1 + 3 * width)  # filter byte 0, then the pixels
    data = b"".join(pack.compress(row) for _ in range(height)) + pack.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return Path(path)
