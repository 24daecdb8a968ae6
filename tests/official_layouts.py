"""Write timm models' weights in the layouts of the official DeiT, MoCo v3 and SimMIM checkpoints.

The inverse of what ``mimstudy.models.checkpoints`` reads, written from the official code (facebookresearch/
deit ``main.py``, facebookresearch/moco-v3 ``main_moco.py``/``moco/builder.py``, microsoft/SimMIM
``models/vision_transformer.py`` and ``utils.py``, microsoft/Swin-Transformer
``models/swin_transformer_v2.py`` and ``models/simmim.py``). The buffers the official modules
register as persistent (relative position indices, coordinate tables, shift masks) are recomputed
here with the official formulas, independently of timm, so loading checks timm's against them.
"""

from __future__ import annotations

import argparse
import math
import re

import torch
import torch.nn as nn


@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0, max_numel: int = 100_000) -> nn.Module:
    """Perturb the parameters that start constant (biases, norms, layer scales, bias tables, q_bias...).

    Large weight matrices are random from timm's init already; they are left alone to save time.
    """
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        if p.numel() <= max_numel:
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model.eval()


def beit_relative_position_index(h: int, w: int) -> torch.Tensor:
    """SimMIM/BEiT ``RelativePositionBias.relative_position_index``: patch pairs, then 3 CLS entries."""
    num_relative = (2 * h - 1) * (2 * w - 1) + 3
    index = torch.zeros((h * w + 1,) * 2, dtype=torch.long)
    index[1:, 1:] = swin_relative_position_index(h, w)
    index[0, 0:] = num_relative - 3  # cls to token
    index[0:, 0] = num_relative - 2  # token to cls
    index[0, 0] = num_relative - 1  # cls to cls
    return index


def swin_relative_position_index(h: int, w: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")).flatten(1)  # 2, N
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()  # N, N, 2
    rel[:, :, 0] += h - 1
    rel[:, :, 1] += w - 1
    rel[:, :, 0] *= 2 * w - 1
    return rel.sum(-1)


def swinv2_relative_coords_table(h: int, w: int) -> torch.Tensor:
    """Swin V2 log-spaced coordinates for ``pretrained_window_size=0``: ``[1, 2h-1, 2w-1, 2]``."""
    rh = torch.arange(-(h - 1), h, dtype=torch.float32)
    rw = torch.arange(-(w - 1), w, dtype=torch.float32)
    table = torch.stack(torch.meshgrid(rh, rw, indexing="ij")).permute(1, 2, 0).contiguous().unsqueeze(0)
    table[..., 0] /= h - 1
    table[..., 1] /= w - 1
    table *= 8
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)


def swin_attn_mask(res: tuple[int, int], window: int, shift: int) -> torch.Tensor:
    """Official shifted-window mask ``[nW, window^2, window^2]`` (0 or -100)."""
    H, W = res
    img_mask = torch.zeros((1, H, W, 1))
    cnt = 0
    for h in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for w in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            img_mask[:, h, w, :] = cnt
            cnt += 1
    windows = img_mask.view(1, H // window, window, W // window, window, 1).permute(0, 1, 3, 2, 4, 5)
    windows = windows.reshape(-1, window * window)
    mask = windows.unsqueeze(1) - windows.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


def deit_checkpoint(vit: nn.Module) -> dict:
    """DeiT ``main.py``: weights under ``model``, plus training state and the argparse ``args``."""
    return {
        "model": vit.state_dict(),
        "optimizer": {"state": {}, "param_groups": [{"lr": 5e-4, "params": [0, 1]}]},
        "epoch": 299,
        "args": argparse.Namespace(model="deit_base_patch16_224", lr=5e-4),
    }


def mocov3_checkpoint(vit: nn.Module, proj_dim: int = 16) -> dict:
    """MoCo v3 ``main_moco.py``: a DDP ``state_dict`` with base/momentum encoders and predictor.

    ``vit`` must be headless: MoCo v3 replaces the classifier by a projection MLP (``head.*``,
    Linear-BN-ReLU-Linear-BN) inside the base encoder.
    """
    dim, hidden = vit.embed_dim, 2 * proj_dim
    encoder = dict(vit.state_dict())
    encoder.update({
        "head.0.weight": torch.randn(hidden, dim), "head.1.weight": torch.ones(hidden),
        "head.1.bias": torch.zeros(hidden), "head.1.running_mean": torch.zeros(hidden),
        "head.1.running_var": torch.ones(hidden), "head.1.num_batches_tracked": torch.tensor(7),
        "head.3.weight": torch.randn(proj_dim, hidden),
    })
    sd = {f"module.base_encoder.{k}": v for k, v in encoder.items()}
    sd.update({f"module.momentum_encoder.{k}": v + 1.0 for k, v in encoder.items()})
    sd.update({"module.predictor.0.weight": torch.randn(hidden, proj_dim),
               "module.predictor.3.weight": torch.randn(proj_dim, hidden)})
    return {"epoch": 300, "arch": "vit_base", "state_dict": sd, "optimizer": {"state": {}, "param_groups": []},
            "scaler": {"scale": 65536.0}}


def simmim_checkpoint(encoder: dict, dim: int, stride: int, config=None) -> dict:
    """SimMIM ``main_simmim.py``: ``encoder.*`` (with ``mask_token``) and the 1x1-conv ``decoder``."""
    sd = {f"encoder.{k}": v for k, v in encoder.items()}
    sd["encoder.mask_token"] = torch.randn(1, 1, dim)
    sd["decoder.0.weight"] = torch.randn(stride**2 * 3, dim, 1, 1)
    sd["decoder.0.bias"] = torch.randn(stride**2 * 3)
    out = {"model": sd, "epoch": 799, "max_accuracy": 0.0}
    if config is not None:
        out["config"] = config
    return out


def simmim_vit_encoder(beit: nn.Module) -> dict:
    """Official SimMIM ViT encoder keys from a timm ``Beit`` (same names, plus the index buffers)."""
    sd = dict(beit.state_dict())
    h, w = beit.patch_embed.grid_size
    if beit.rel_pos_bias is not None:
        sd["rel_pos_bias.relative_position_index"] = beit_relative_position_index(h, w)
    for i, blk in enumerate(beit.blocks):
        if blk.attn.relative_position_bias_table is not None:
            sd[f"blocks.{i}.attn.relative_position_index"] = beit_relative_position_index(h, w)
    return sd


def official_swinv2_encoder(swin: nn.Module, window_size: int, rpe_name: str = "cpb_mlp") -> dict:
    """Official Swin V2 encoder keys from a timm ``SwinTransformerV2`` built with ``window_size``.

    timm merges patches at the start of stages 1..n-1, the official code at the end of stages
    0..n-2, so ``layers.{i}.downsample`` becomes ``layers.{i-1}.downsample``; early official code
    called ``cpb_mlp`` ``rpe_mlp``. The persistent buffers are added with the official formulas,
    including the official rule for stages no larger than a window (one window, no shift).
    """
    sd = {}
    for k, v in swin.state_dict().items():
        k = re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample", k)
        sd[k.replace(".cpb_mlp.", f".{rpe_name}.").replace("head.fc.", "head.")] = v
    for i, layer in enumerate(swin.layers):
        for j, blk in enumerate(layer.blocks):
            res = tuple(blk.input_resolution)
            window, shift = window_size, 0 if j % 2 == 0 else window_size // 2
            if min(res) <= window:
                window, shift = min(res), 0
            prefix = f"layers.{i}.blocks.{j}"
            sd[f"{prefix}.attn.relative_position_index"] = swin_relative_position_index(window, window)
            sd[f"{prefix}.attn.relative_coords_table"] = swinv2_relative_coords_table(window, window)
            if shift:
                sd[f"{prefix}.attn_mask"] = swin_attn_mask(res, window, shift)
    return sd


def official_replknet_keys(layers, small_kernel: int = 5, stem_layers: int = 4, merged: bool = False) -> set[str]:
    """The state-dict keys of the official ``RepLKNet`` (DingXiaoH/RepLKNet-pytorch ``replknet.py``),
    written out from its module structure: ``stem`` (ModuleList of conv_bn_relu), ``stages.S.blocks``
    alternating ``RepLKBlock`` (``pw1``, ``pw2``, ``large_kernel``, ``prelkb_bn``) and ``ConvFFN``
    (``preffn_bn``, ``pw1``, ``pw2``), ``transitions.S.{0,1}``, ``norm``, ``head``."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

    def conv_bn(prefix):
        return {f"{prefix}.conv.weight"} | {f"{prefix}.bn.{b}" for b in bn}

    keys = set().union(*(conv_bn(f"stem.{i}") for i in range(stem_layers)))
    for s, depth in enumerate(layers):
        for j in range(depth):
            block, ffn = f"stages.{s}.blocks.{2 * j}", f"stages.{s}.blocks.{2 * j + 1}"
            keys |= conv_bn(f"{block}.pw1") | conv_bn(f"{block}.pw2") | {f"{block}.prelkb_bn.{b}" for b in bn}
            if merged:
                keys |= {f"{block}.large_kernel.lkb_reparam.weight", f"{block}.large_kernel.lkb_reparam.bias"}
            else:
                keys |= conv_bn(f"{block}.large_kernel.lkb_origin")
                if small_kernel:
                    keys |= conv_bn(f"{block}.large_kernel.small_conv")
            keys |= conv_bn(f"{ffn}.pw1") | conv_bn(f"{ffn}.pw2") | {f"{ffn}.preffn_bn.{b}" for b in bn}
        if s < len(layers) - 1:
            keys |= conv_bn(f"transitions.{s}.0") | conv_bn(f"transitions.{s}.1")
    return keys | {f"norm.{b}" for b in bn} | {"head.weight", "head.bias"}
