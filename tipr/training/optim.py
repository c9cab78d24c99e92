"""The trainer's optimiser groups and warm-up length."""

from __future__ import annotations

from torch import nn


def param_groups(module: nn.Module, backbone: nn.Module, *, lr: float, head_lr_scale: float) -> list[dict]:
    """The backbone's parameters at `lr`; the method's heads (all other parameters) at `lr * head_lr_scale`.

    The heads start from scratch (and GEA's gates from 0) while the backbone is pretrained: like IRRA's
    lr_factor, they may learn faster than the backbone.
    """
    in_backbone = {id(p) for p in backbone.parameters()}
    groups = [{"params": [p for p in module.parameters() if id(p) in in_backbone]}]
    heads = [p for p in module.parameters() if id(p) not in in_backbone]
    if heads:
        groups.append({"params": heads, "lr": lr * head_lr_scale})
    return groups


def default_warmup_steps(updates_per_epoch: int, max_train_steps: int) -> int:
    """Five epochs of linear warm-up, at most a tenth of the run."""
    return min(5 * updates_per_epoch, max_train_steps // 10)
