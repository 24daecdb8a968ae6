"""A downstream backbone: pre-trained or random weights, its first k blocks, blocks loaded in a given order.

Blocks are counted flat, in the order the image passes them: ViT's ``blocks``, Swin's blocks stage
after stage (a cut inside a stage drops the later stages; the feature stride follows). Features come
from timm's ``forward_intermediates`` (the last block's output, ``NCHW``), so a head written once
serves ViT, SwinV2 and any timm model that speaks that API.

* ``keep_blocks = k`` keeps blocks ``0 .. k-1`` (Figure 5 drops the last ``L - k``). ViT keeps its final
  norm; a Swin cut before its last stage loses the final norm, which is sized for that stage.
* ``block_order = [i_0, ..., i_{m-1}]`` loads pre-trained block ``i_j`` into position ``j`` and keeps
  ``m`` blocks (§3.2: randomly sampled layers; ``sample_block_order`` draws them). Blocks must be
  interchangeable (same shapes): any ViT block, Swin blocks of one stage.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from mimstudy.config import ConfigError
from mimstudy.models.backbones import create_backbone
from mimstudy.models.checkpoints.state import CheckpointError, load_pretrain_checkpoint
from mimstudy.objectives.finetune import load_encoder


def flat_blocks(model: nn.Module) -> list[nn.Module]:
    """Every transformer block in forward order (ViT ``blocks``; Swin ``layers[s].blocks``)."""
    if hasattr(model, "blocks"):
        return list(model.blocks)
    if hasattr(model, "layers"):
        return [block for stage in model.layers for block in stage.blocks]
    raise TypeError(f"{type(model).__name__} has neither 'blocks' (ViT) nor 'layers[s].blocks' (Swin)")


def keep_first_blocks(model: nn.Module, k: int) -> nn.Module:
    """Keep blocks ``0 .. k-1`` of ``model`` (in place) and return it."""
    total = len(flat_blocks(model))
    if not 1 <= k <= total:
        raise ValueError(f"keep_blocks must lie in [1, {total}] for {type(model).__name__}, got {k}")
    if hasattr(model, "blocks"):
        model.blocks = model.blocks[:k]
        return model
    seen = 0
    for s, stage in enumerate(model.layers):
        if seen + len(stage.blocks) >= k:
            stage.blocks = stage.blocks[:k - seen]
            if s < len(model.layers) - 1:
                model.layers = model.layers[:s + 1]
                model.norm = nn.Identity()  # the final norm is sized for the last stage
            return model
        seen += len(stage.blocks)
    return model


def orderable_blocks(model: nn.Module) -> int:
    """How many leading blocks are interchangeable: every ViT block, the first stage of a Swin."""
    return len(model.blocks) if hasattr(model, "blocks") else len(model.layers[0].blocks)


def sample_block_order(num_blocks: int, k: int, seed: int) -> list[int]:
    """``k`` of ``num_blocks`` pre-trained blocks drawn without replacement, in drawn order (§3.2)."""
    if not 1 <= k <= num_blocks:
        raise ValueError(f"cannot sample {k} of {num_blocks} blocks")
    return [int(i) for i in np.random.default_rng(seed).choice(num_blocks, size=k, replace=False)]


def block_indices(spec: list[int] | tuple[int, int], num_blocks: int) -> list[int]:
    """The pre-trained blocks to load into the first positions, from
    :meth:`mimstudy.config.DownstreamConfig.block_order_spec`: the listed indices (``[]``: as
    trained), or ``(k, seed)``: k blocks drawn by :func:`sample_block_order`."""
    if isinstance(spec, tuple):
        return sample_block_order(num_blocks, *spec)
    if any(not 0 <= i < num_blocks for i in spec):
        raise ConfigError(f"block_order lists blocks outside [0, {num_blocks}): {spec}")
    return list(spec)


@torch.no_grad()
def load_blocks_in_order(model: nn.Module, order: list[int]) -> nn.Module:
    """Position ``j`` gets the weights of block ``order[j]``; keeps ``len(order)`` blocks."""
    blocks = flat_blocks(model)
    bad = [i for i in order if not 0 <= i < len(blocks)]
    if bad or not order:
        raise ValueError(f"block_order must list block indices in [0, {len(blocks)}), got {order}")
    states = [{k: v.clone() for k, v in b.state_dict().items()} for b in blocks]
    for j, i in enumerate(order):
        source, target = states[i], blocks[j].state_dict()
        if any(source[k].shape != target[k].shape for k in target) or set(source) != set(target):
            raise ValueError(f"block {i} does not fit position {j} (different shapes: another Swin stage); "
                             "order only blocks of one stage")
        blocks[j].load_state_dict(source)
    return keep_first_blocks(model, len(order))


def build_backbone(arch: str, checkpoint: str | None, keep_blocks: int = 0, block_order: list[int] | None = None,
                   drop_path: float = 0.0) -> tuple[nn.Module, dict]:
    """The headless backbone of a pre-training checkpoint (or random ``arch`` when ``checkpoint`` is None).

    Returns the model in train mode and the pre-training run's config (``{}`` for random weights).
    """
    config: dict = {}
    if checkpoint is None:
        model = create_backbone(arch, drop_path_rate=drop_path)
    else:
        state = load_pretrain_checkpoint(checkpoint)
        config = state["config"]
        if arch and config["arch"] != arch:
            raise CheckpointError(f"{checkpoint} holds a {config['arch']} backbone, not {arch}")
        model = create_backbone(config["arch"], num_classes=state.get("num_classes", 10),
                                img_size=config.get("img_size"), drop_path_rate=drop_path)
        load_encoder(model, state["backbone"])
    model.reset_classifier(0)
    if block_order:
        load_blocks_in_order(model, list(block_order))
    if keep_blocks:
        keep_first_blocks(model, keep_blocks)
    return model.train(), config


def features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The last kept block's output ``[B, C, h, w]`` (with the final norm where it applies)."""
    return model.forward_intermediates(images, indices=1, norm=True, intermediates_only=True)[-1]


def feature_shape(model: nn.Module, img_size: int, in_chans: int = 1) -> tuple[int, int]:
    """Channels and stride of :func:`features` at ``img_size``."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = features(model, torch.zeros(1, in_chans, img_size, img_size))
    model.train(was_training)
    return out.shape[1], img_size // out.shape[-1]
