"""AdamW parameter groups and the cosine learning-rate schedule with linear warm-up."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from mimstudy.objectives.finetune import layer_decay_param_groups


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: weights decay; biases, norms, tokens and position embeddings do not."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = param.ndim <= 1 or name.endswith(("token", "pos_embed")) or ".token" in name
        (no_decay if skip else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def cosine_lr_factor(step: int, total_steps: int, warmup_steps: int, min_factor: float) -> float:
    """Multiplier of the base learning rate at ``step``: linear warm-up, then cosine to ``min_factor``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def build_optimizer(model: nn.Module, lr: float, weight_decay: float, total_steps: int,
                    warmup_steps: int, min_lr: float, layer_decay: float | None = None):
    """AdamW and a per-step ``LambdaLR`` cosine schedule (both have ``state_dict`` for resuming).

    With ``layer_decay`` (fine-tuning), the groups of
    :func:`~mimstudy.objectives.finetune.layer_decay_param_groups` start at ``lr * lr_scale``;
    ``LambdaLR`` multiplies each group's own initial lr by the same factor, so the ratios between
    layers hold through warm-up and decay (and each group's floor is ``min_lr * lr_scale``).
    ``None`` keeps the two groups of :func:`param_groups`.
    """
    if layer_decay is None:
        groups = param_groups(model, weight_decay)
    else:
        groups = layer_decay_param_groups(model, weight_decay, layer_decay, lr=lr)
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_lr_factor(step, total_steps, warmup_steps, min_lr / lr)
    )
    return optimizer, scheduler
