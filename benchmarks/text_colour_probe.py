"""Does a generator's text tower say which colour is whose? A linear probe on its pooled caption feature.

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python benchmarks/text_colour_probe.py \\
        --generator assets/generator --data_root build/assets/synthpedes

For each pipeline folder, the UNet's global caption vector (the text tower's pooled feature, as
`tipr.generation.tiny_pipeline.unet_conditioning` makes it) is computed for every caption of a SynthPEDES
dataset; one linear classifier per attribute (upper / lower garment colour) is trained on the train captions that
name it and scored on the test captions that name it. A bag of words cannot pass this test (a red shirt with black
trousers and a black shirt with red trousers pool alike), so high accuracy means the tower reads word order.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import tipr  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import tipr  # noqa: F401

import torch
import torch.nn.functional as F

from generator_fidelity import load_people  # noqa: E402  (benchmarks/, the script's own folder)
from tipr.generation.attribute_warmup import IGNORE, attribute_targets

KEYS = ("upper_colour", "lower_colour")


def captions_of(root: Path, split: str) -> tuple[list[str], list[dict]]:
    """Every caption of the split and its record's attributes."""
    pairs = [(c, r["attributes"]) for person in load_people(root, split) for r in person for c in r["captions"]]
    return [c for c, _ in pairs], [a for _, a in pairs]


def pooled_features(generator: str, captions: list[str]) -> torch.Tensor:
    from tipr.generation.tiny_pipeline import TiprTinyText2ImagePipeline, unet_conditioning

    encoder = TiprTinyText2ImagePipeline.from_pretrained(generator).text_encoder.float().eval()
    with torch.no_grad():
        ids = encoder.tokenize(captions)
        return torch.cat([unet_conditioning(encoder(part), encoder.attention_mask(part),
                                            encoder.config.pooling)["class_labels"] for part in ids.split(256)])


def probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
          steps: int = 300) -> float:
    """Held-out accuracy of a linear softmax classifier (standardised features, Adam, fixed seed)."""
    keep, keep_test = train_y != IGNORE, test_y != IGNORE
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x, xt = (train_x[keep] - mean) / std, (test_x[keep_test] - mean) / std
    torch.manual_seed(0)
    head = torch.nn.Linear(x.shape[1], int(max(train_y.max(), test_y.max())) + 1)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(head(x), train_y[keep]).backward()
        optimizer.step()
    return (head(xt).argmax(-1) == test_y[keep_test]).float().mean().item()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generator", action="append", required=True, help="pipeline folder (repeat; LABEL=PATH)")
    p.add_argument("--data_root", default="build/assets/synthpedes", help="a SynthPEDES dataset folder")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    root = Path(args.data_root)
    (train_c, train_a), (test_c, test_a) = captions_of(root, "train"), captions_of(root, "test")
    train_t, test_t = attribute_targets(train_c, train_a), attribute_targets(test_c, test_a)
    print(f"{len(train_c)} train / {len(test_c)} test captions of {root}; test captions naming the colour: "
          + ", ".join(f"{k} {int((test_t[k] != IGNORE).sum())}" for k in KEYS) + "\n")
    print("| text tower | " + " | ".join(k.replace("_", " ") for k in KEYS) + " |")
    print("| --- |" + " --- |" * len(KEYS))
    for spec in args.generator:
        label, _, path = spec.rpartition("=")
        x, xt = pooled_features(path, train_c), pooled_features(path, test_c)
        cells = [f"{100 * probe(x, train_t[k], xt, test_t[k]):.1f}" for k in KEYS]
        print(f"| {label or path} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
