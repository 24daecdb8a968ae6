"""SimMIM -> supervised fine-tuning: layer-wise lr decay and a classifier holding a pre-trained encoder.

Layer-wise learning-rate decay (BEiT; used by SimMIM's fine-tuning, 0.9 for Swin-B) scales the lr of
layer ``i`` of ``L`` by ``layer_decay ** (L - i)``: 1 for the classifier head, smallest for the patch
embedding. Layers are numbered by timm's ``group_matcher`` through ``timm.optim.param_groups_layer_decay``:
ViT: patch embedding and tokens = 0, block ``i`` = ``i + 1``, final norm with the last block, head last;
Swin: patch embedding = 0, then every block in order (a stage's patch merging with its first block),
final norm with the last block, head last. (The official SimMIM Swin fine-tuning puts the final norm
with the head and each merging with the block before it; the difference is one factor of
``layer_decay`` for those few tensors.)
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from timm.optim import param_groups_layer_decay

from mimstudy.models.checkpoints.state import CheckpointError, load_pretrain_checkpoint
from mimstudy.models.backbones import create_backbone


def _no_weight_decay(backbone: nn.Module) -> set[str]:
    names = set(backbone.no_weight_decay()) if hasattr(backbone, "no_weight_decay") else set()
    return names | {n for n, _ in backbone.named_parameters() if n.endswith(("token", "pos_embed"))}


def layer_decay_param_groups(model: nn.Module, weight_decay: float, layer_decay: float,
                             lr: float | None = None) -> list[dict]:
    """AdamW groups with layer-wise lr decay: each has ``lr_scale`` and, given ``lr``, ``lr = lr * lr_scale``.

    ``model`` is a timm backbone or an objective holding one as ``.backbone``; the objective's own
    parameters (mask token, decoder) then get scale 1. Weight decay skips 1-d tensors, tokens,
    position embeddings and the backbone's ``no_weight_decay()`` (SwinV2: ``cpb_mlp``, ``logit_scale``).
    """
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must lie in (0, 1], got {layer_decay}")
    backbone = getattr(model, "backbone", model)
    if not hasattr(backbone, "group_matcher"):
        raise TypeError(f"layer decay needs a timm model with group_matcher(), got {type(backbone).__name__}")
    groups = param_groups_layer_decay(
        backbone, weight_decay=weight_decay, no_weight_decay_list=sorted(_no_weight_decay(backbone)),
        layer_decay=layer_decay,
    )
    inside = {id(p) for p in backbone.parameters()}
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad and id(param) not in inside:
            skip = param.ndim <= 1 or name.endswith(("token", "pos_embed"))
            (no_decay if skip else decay).append(param)
    groups += [{"params": decay, "weight_decay": weight_decay, "lr_scale": 1.0},
               {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0}]
    groups = [g for g in groups if g["params"]]
    if lr is not None:
        for group in groups:
            group["lr"] = lr * group["lr_scale"]
    return groups


def head_prefix(model: nn.Module) -> str:
    """State-dict prefix of a timm model's classifier (``head`` for ViT, ``head.fc`` for Swin)."""
    prefix = getattr(model, "pretrained_cfg", {}).get("classifier")
    if not isinstance(prefix, str):
        raise TypeError(f"{type(model).__name__} does not name its classifier in pretrained_cfg['classifier']")
    return prefix


def _in_head(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


@torch.no_grad()
def load_encoder(model: nn.Module, weights: dict[str, torch.Tensor]) -> list[str]:
    """Copy every tensor of ``weights`` but the classifier into ``model`` and re-initialise its head.

    ``weights`` is a backbone state dict of the same architecture (its head, of any size, is ignored).
    The new head gets timm's ViT initialisation (weights truncated normal, std 0.02; zero bias).
    Returns the re-initialised head keys. Raises :class:`CheckpointError`, copying nothing, if any
    encoder tensor has no place in ``model``, has another shape there, or ``model`` has encoder
    tensors the weights lack.
    """
    prefix = head_prefix(model)
    encoder = {k: v for k, v in weights.items() if not _in_head(k, prefix)}
    target = {k: v for k, v in model.state_dict().items() if not _in_head(k, prefix)}
    missing = [k for k in target if k not in encoder]
    unexpected = [k for k in encoder if k not in target]
    reshaped = [f"{k} {tuple(encoder[k].shape)} vs {tuple(v.shape)}" for k, v in target.items()
                if k in encoder and encoder[k].shape != v.shape]
    if missing or unexpected or reshaped:
        raise CheckpointError(
            f"the weights are not this architecture's encoder ({type(model).__name__}): missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shapes differ {reshaped[:5]}"
        )
    model.load_state_dict(encoder, strict=False)
    head = model.get_submodule(prefix)
    if isinstance(head, nn.Linear):
        trunc_normal_(head.weight, std=0.02)
        nn.init.zeros_(head.bias)
    return [k for k in model.state_dict() if _in_head(k, prefix)]


def classifier_from_checkpoint(path: str | Path, num_classes: int = 10, **overrides) -> tuple[nn.Module, dict]:
    """A ``num_classes`` classifier of a pre-training checkpoint's architecture holding its encoder.

    ``path`` is a checkpoint written by :func:`mimstudy.training.pretrain.pretrain` (typically SimMIM); the
    classifier head is freshly initialised (see :func:`load_encoder`). ``overrides`` go to
    :func:`~mimstudy.models.backbones.create_backbone`, e.g. ``drop_path_rate=0.1`` for fine-tuning. Returns the
    model in train mode and the pre-training run's config dict.
    """
    state = load_pretrain_checkpoint(path)
    config = state["config"]
    model = create_backbone(config["arch"], num_classes=num_classes, img_size=config.get("img_size"), **overrides)
    load_encoder(model, state["backbone"])
    return model.train(), config
