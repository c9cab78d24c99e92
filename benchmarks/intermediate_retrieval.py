"""How much GEA's intermediate image says about the person a query describes, through a model's image encoder.

    HF_HUB_OFFLINE=1 python benchmarks/intermediate_retrieval.py --model outputs/ablations/run-XXXX \\
        --data_root outputs/ablations/synthpedes --generator assets/generator --cache outputs/ablations/generation-cache

For every test caption, three queries meet the test gallery through the model's two towers, and the table
gives R1/R5/R10/mAP/mINP of each:

- **text**: the caption's own feature (the two-tower baseline);
- **intermediate image**: the feature of the caption's generated image, through the *image* encoder;
- **shuffled intermediate images**: the same images handed to the wrong captions (a fixed permutation): the
  level an image with no information about its caption reaches;
- **text + intermediate image**: the mean of the two normalised features (a fusion with no training at all).

TGTE can only improve on "text" with what the intermediate image carries: when its row is no better than the
shuffled one, there is nothing for TGTE's gates to learn. Pass several --generator folders to compare them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from tipr.data import CaptionList, ImageList, load_dataset
from tipr.metrics import format_table, rank_metrics
from tipr.models.tipr_model import load_model
from tipr.generation.generated import GeneratedImages, prepare_generated


@torch.no_grad()
def encode(encoder, dataset, batch_size: int) -> torch.Tensor:
    return torch.cat([F.normalize(encoder(batch), dim=-1) for batch in DataLoader(dataset, batch_size=batch_size)])


class _Images(torch.utils.data.Dataset):
    """The image tensors of a GeneratedImages (its `present` flags dropped: every caption has one here)."""

    def __init__(self, generated: GeneratedImages):
        self.generated = generated

    def __len__(self) -> int:
        return len(self.generated)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.generated[index][0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a tipr model folder (its two towers encode everything)")
    p.add_argument("--dataset", default="cuhk-pedes")
    p.add_argument("--data_root", required=True)
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--generator", nargs="+", required=True, help="one or more text-to-image pipeline folders / ids")
    p.add_argument("--cache", default=".cache/tipr-generated", help="generation cache (shared with the trainer)")
    p.add_argument("--steps", type=int, default=10, help="denoising steps per image (the ablations use 10)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the per-caption seeds")
    p.add_argument("--batch_size", type=int, default=64)
    args = p.parse_args()

    model = load_model(args.model).eval()
    split = getattr(load_dataset(args.dataset, args.data_root), args.split)
    transform = model.image_transform(train=False)
    gallery = encode(model.encode_images, ImageList(split.image_paths, transform), args.batch_size)
    text = encode(model.encode_texts, CaptionList(split.captions, model.backbone.tokenizer), args.batch_size)
    query_pids, gallery_pids = torch.tensor(split.caption_pids), torch.tensor(split.image_pids)
    rows = {"text": rank_metrics(text @ gallery.t(), query_pids, gallery_pids)}
    shuffle = torch.randperm(len(text), generator=torch.Generator().manual_seed(0))
    for generator in args.generator:
        keys = prepare_generated(split.captions, generator=generator, cache_dir=args.cache, steps=args.steps,
                                 seed=args.seed, progress=False)
        images = _Images(GeneratedImages(keys, args.cache, transform, torch.zeros(0)))
        inter = encode(model.encode_images, images, args.batch_size)
        name = Path(generator).name or generator
        rows[f"intermediate image ({name})"] = rank_metrics(inter @ gallery.t(), query_pids, gallery_pids)
        rows[f"shuffled intermediate images ({name})"] = rank_metrics(inter[shuffle] @ gallery.t(), query_pids,
                                                                      gallery_pids)
        fused = F.normalize(text + inter, dim=-1)
        rows[f"text + intermediate image ({name})"] = rank_metrics(fused @ gallery.t(), query_pids, gallery_pids)
    print(f"{split.num_captions} {args.split} captions, {split.num_images} images; model {args.model}")
    print(format_table(rows))


if __name__ == "__main__":
    main()
