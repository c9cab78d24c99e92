"""One trained model's collapse measurements on a split (tipr.ecca.diagnostics), with its R1 and mAP."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from tipr.data import CaptionList, ImageList
from tipr.data.records import EvalSplit
from tipr.ecca.diagnostics import completion_weight_ratio, prototype_code_stats, random_pair_cosine
from tipr.metrics import rank_metrics
from tipr.models.tipr_model import load_model


@torch.no_grad()
def diagnose(model_dir: str, split: EvalSplit, *, k_prime: int = 4) -> dict[str, float | str]:
    """The row of one model: metrics and collapse measurements on `split`."""
    model = load_model(model_dir).eval()
    images = torch.cat([model.encode_images(x) for x in DataLoader(
        ImageList(split.image_paths, model.image_transform(train=False)), batch_size=128)])
    texts = torch.cat([model.encode_texts(t) for t in DataLoader(
        CaptionList(split.captions, model.tokenize), batch_size=128)])
    text_pids, image_pids = torch.tensor(split.caption_pids), torch.tensor(split.image_pids)
    metrics = rank_metrics(torch.nn.functional.normalize(texts, dim=-1)
                           @ torch.nn.functional.normalize(images, dim=-1).t(), text_pids, image_pids)
    c = model.ecca_config
    row: dict[str, float | str] = {"R1": metrics["R1"], "mAP": metrics["mAP"],
                                   "random-pair cosine": random_pair_cosine(texts, images, text_pids, image_pids),
                                   "FMC max/min weight": completion_weight_ratio(
                                       texts, images, k_prime=c.k_prime if c else k_prime,
                                       temperature=c.fmc_temperature if c else 1.0)}
    if c is not None and c.use_epga:
        for name, feats in (("image", images), ("text", texts)):
            stats = prototype_code_stats(feats, model.prototypes(), tau=c.tau, epsilon=c.sinkhorn_epsilon,
                                         sinkhorn_iters=c.sinkhorn_iters)
            row[f"{name} code entropy"] = stats["code_entropy"]
            row[f"{name} prediction entropy"] = stats["prediction_entropy"]
            row[f"{name} score spread"] = stats["score_spread"]
        row["log K"] = stats["log_K"]
    return row
