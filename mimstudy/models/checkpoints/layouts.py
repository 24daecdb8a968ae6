"""Checkpoint layouts: how each released file stores its encoder, and how to pull it out.

Each layout turns the dict stored in a file into a flat state dict of encoder weights named as in
the *original* code (timm's ``checkpoint_filter_fn`` then maps those names onto the timm model), plus
the architecture options the keys reveal. Layouts, with the files they describe:

``timm``
    a timm model's own ``state_dict()`` (bare, or under ``model``/``state_dict``).
``deit``
    facebookresearch/deit ``main.py``: ``{"model": <timm ViT keys>, "args": Namespace, ...}``.
``mocov3``
    facebookresearch/moco-v3 ``main_moco.py``: ``{"state_dict": {"module.base_encoder.*",
    "module.momentum_encoder.*", "module.predictor.*"}, ...}``; the base encoder's ``head.*`` is the
    projection MLP, not a classifier.
``simmim_vit``
    microsoft/SimMIM ``main_simmim.py``: ``{"model": {"encoder.*", "decoder.*"}, "config": ...}`` with
    a BEiT-style ViT encoder (shared ``rel_pos_bias``, ``q_bias``/``v_bias``, ``gamma_1``/``gamma_2``,
    ``mask_token``); timm's ``Beit`` uses the same names.
``simmim_swinv2``
    microsoft/Swin-Transformer SimMIM: ``{"model": {"encoder.*", "decoder.*"}, ...}`` with an official
    Swin V2 encoder (patch merging at the *end* of stages; early code named ``cpb_mlp`` ``rpe_mlp``).

``replknet``
    DingXiaoH/RepLKNet-pytorch ``replknet.py``: ``stem.N.{conv,bn}``, ``stages.S.blocks.J.*`` (RepLK
    blocks at even ``J`` with ``large_kernel.lkb_origin`` and optionally ``large_kernel.small_conv``, or
    ``large_kernel.lkb_reparam`` once merged; ConvFFNs at odd ``J``), ``transitions.S.{0,1}``,
    ``norm``, ``head``; bare or under ``model``. :class:`mimstudy.models.replknet.RepLKNet` uses the same
    names, so the keys load as they are; the small-kernel size (or the merged form) is read off them.
    An ``encoder.`` prefix (a SimMIM file) is removed with the decoder and mask token.

The ``encoder.`` prefix is optional for both SimMIM layouts and for ``replknet``, so fine-tuned files load too; a
``module.`` prefix on every key (a DistributedDataParallel model saved as is) is removed for all
layouts but ``mocov3``, where it is part of the layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from timm.models import get_arch_name, model_entrypoint
from timm.models.beit import Beit
from timm.models.swin_transformer_v2 import SwinTransformerV2
from timm.models.vision_transformer import VisionTransformer

from mimstudy.models.checkpoints.reading import CheckpointError
from mimstudy.models.replknet import RepLKNet

LAYOUTS = ("timm", "deit", "mocov3", "simmim_vit", "simmim_swinv2", "replknet")
CONTAINERS = ("state_dict", "model", "module")  # where training scripts put the weights
MOCO_PREFIXES = ("module.base_encoder.", "base_encoder.")
DDP_PREFIX = "module."  # DistributedDataParallel's wrapper, in files saved without unwrapping
SIMMIM_PREFIX = "encoder."

_SWIN_RPE = re.compile(r"layers\.\d+\.blocks\.\d+\.attn\.(cpb_mlp|rpe_mlp)\.")
_BEIT_BLOCK = re.compile(r"blocks\.\d+\.(gamma_1|attn\.q_bias|attn\.relative_position_bias_table)$")
_REPLK_KERNEL = re.compile(r"stages\.\d+\.blocks\.\d+\.large_kernel\.(lkb_origin|lkb_reparam|small_conv)\.")


@dataclass
class Extracted:
    """Encoder weights taken out of a checkpoint, still in the original code's names."""

    state_dict: dict[str, torch.Tensor]
    dropped: list[str] = field(default_factory=list)  # file keys left out on purpose
    model_kwargs: dict = field(default_factory=dict)  # architecture options the keys reveal
    model_class: type[nn.Module] | None = None  # timm class the weights are written for
    notes: list[str] = field(default_factory=list)
    prefix: str = ""  # path of the encoder in the file: file key = prefix + state_dict key


def _sample(keys, n: int = 5) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} keys)" if len(keys) > n else "")


def find_weights(ckpt: dict) -> tuple[str | None, dict[str, torch.Tensor]]:
    """``(container, state_dict)``: the tensors dict at the top level or under a known container key."""
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return None, ckpt
    for name in CONTAINERS:
        inner = ckpt.get(name)
        if isinstance(inner, dict) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            return name, {k: v for k, v in inner.items() if isinstance(v, torch.Tensor)}
    raise CheckpointError(
        f"no state dict found: the file's top-level keys are [{_sample(ckpt, 12)}], and none of "
        f"{list(CONTAINERS)} holds tensors. Save model.state_dict(), bare or under one of those keys"
    )


def _strip(sd: dict, prefix: str) -> tuple[dict, list[str]]:
    """Keys under ``prefix`` without it, and the other keys (dropped); ``sd`` as is if none has it."""
    kept = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if not kept:
        return dict(sd), []
    return kept, [k for k in sd if not k.startswith(prefix)]


def _strip_ddp(sd: dict) -> tuple[dict, str]:
    if sd and all(k.startswith(DDP_PREFIX) for k in sd):
        return {k[len(DDP_PREFIX):]: v for k, v in sd.items()}, DDP_PREFIX
    return sd, ""


def _is_swinv2(keys) -> bool:
    return any(_SWIN_RPE.match(k) for k in keys)


def _is_beit(keys, prefixed: bool) -> bool:
    keys = set(keys)
    if "blocks.0.attn.qkv.weight" not in keys:
        return False
    rel_pos = "rel_pos_bias.relative_position_bias_table" in keys or any(
        k.endswith("attn.relative_position_bias_table") for k in keys
    )
    return rel_pos or (prefixed and any(_BEIT_BLOCK.match(k) for k in keys))


def _is_replknet(keys) -> bool:
    return "stem.0.conv.weight" in keys and any(_REPLK_KERNEL.match(k) for k in keys)


def detect_layout(ckpt: dict) -> str:
    """The layout of a loaded checkpoint dict, read from its keys (see the module docstring)."""
    container, sd = find_weights(ckpt)
    if any(k.startswith(MOCO_PREFIXES) for k in sd):
        return "mocov3"
    sd, _ = _strip_ddp(sd)
    prefixed = any(k.startswith(SIMMIM_PREFIX) for k in sd)
    inner, _ = _strip(sd, SIMMIM_PREFIX)
    if _is_swinv2(inner):
        official = (
            prefixed
            or "mask_token" in inner
            or "layers.0.downsample.reduction.weight" in inner
            or any("rpe_mlp" in k for k in inner)
        )
        return "simmim_swinv2" if official else "timm"
    if _is_beit(inner, prefixed):
        return "simmim_vit"
    if _is_replknet(inner):
        return "replknet"
    if prefixed:
        raise CheckpointError(
            f"the weights are under 'encoder.' like a SimMIM file, but the encoder is neither a BEiT-style "
            f"ViT nor a Swin V2: [{_sample(inner)}]. Pass layout='timm' if they are a timm model's keys"
        )
    if container == "model" and "cls_token" in sd and "blocks.0.attn.qkv.weight" in sd:
        return "deit"
    return "timm"


def _extract_timm(sd: dict) -> Extracted:
    return Extracted(dict(sd))


def _extract_deit(sd: dict) -> Extracted:
    if "blocks.0.attn.qkv.weight" not in sd:
        raise CheckpointError(
            f"layout 'deit' expects timm ViT keys (cls_token, blocks.0.attn.qkv.weight, ...) under 'model', "
            f"found [{_sample(sd)}]"
        )
    return Extracted(dict(sd), model_class=VisionTransformer)


def _extract_mocov3(sd: dict) -> Extracted:
    prefix = next((p for p in MOCO_PREFIXES if any(k.startswith(p) for k in sd)), None)
    if prefix is None:
        raise CheckpointError(
            f"layout 'mocov3' expects keys 'module.base_encoder.*' under 'state_dict', found [{_sample(sd)}]"
        )
    encoder, dropped = _strip(sd, prefix)  # drops the momentum encoder and the predictor
    projector = [k for k in encoder if k.startswith("head.")]
    dropped += [prefix + k for k in projector]
    for k in projector:
        del encoder[k]
    return Extracted(encoder, dropped, model_class=VisionTransformer, prefix=prefix)


def _strip_simmim(sd: dict, layout: str, family: str) -> tuple[dict, list[str], str]:
    prefix = SIMMIM_PREFIX if any(k.startswith(SIMMIM_PREFIX) for k in sd) else ""
    encoder, dropped = _strip(sd, SIMMIM_PREFIX)  # drops the decoder
    if "mask_token" in encoder:
        del encoder["mask_token"]
        dropped.append(prefix + "mask_token")
    if not encoder:
        raise CheckpointError(f"layout {layout!r}: no {family} encoder weights in [{_sample(sd)}]")
    return encoder, dropped, prefix


def _extract_simmim_vit(sd: dict) -> Extracted:
    encoder, dropped, prefix = _strip_simmim(sd, "simmim_vit", "BEiT-style ViT")
    if not _is_beit(encoder, prefixed=True):
        raise CheckpointError(
            f"layout 'simmim_vit' expects a BEiT-style ViT encoder (blocks.N.attn.q_bias, gamma_1, "
            f"rel_pos_bias...), found [{_sample(encoder)}]"
        )
    kwargs = dict(
        use_abs_pos_emb="pos_embed" in encoder,
        use_shared_rel_pos_bias="rel_pos_bias.relative_position_bias_table" in encoder,
        use_rel_pos_bias="blocks.0.attn.relative_position_bias_table" in encoder,
        init_values=0.1 if "blocks.0.gamma_1" in encoder else None,  # any value: the file overwrites it
        qkv_bias="blocks.0.attn.q_bias" in encoder,
        use_fc_norm="fc_norm.weight" in encoder,  # pre-training: final `norm`; fine-tuned: `fc_norm`
    )
    return Extracted(encoder, dropped, kwargs, Beit, prefix=prefix)


def _extract_simmim_swinv2(sd: dict) -> Extracted:
    encoder, dropped, prefix = _strip_simmim(sd, "simmim_swinv2", "Swin V2")
    if not _is_swinv2(encoder):
        raise CheckpointError(
            f"layout 'simmim_swinv2' expects Swin V2 keys (layers.N.blocks.M.attn.cpb_mlp...), "
            f"found [{_sample(encoder)}]"
        )
    notes = []
    if any(".rpe_mlp." in k for k in encoder):
        encoder = {k.replace(".rpe_mlp.", ".cpb_mlp."): v for k, v in encoder.items()}
        notes.append("renamed rpe_mlp -> cpb_mlp (early Swin V2 code)")
    return Extracted(encoder, dropped, model_class=SwinTransformerV2, notes=notes, prefix=prefix)


def _extract_replknet(sd: dict) -> Extracted:
    encoder, dropped, prefix = _strip_simmim(sd, "replknet", "RepLKNet")
    if not _is_replknet(encoder):
        raise CheckpointError(
            f"layout 'replknet' expects official RepLKNet keys (stem.0.conv.weight, "
            f"stages.N.blocks.M.large_kernel.lkb_origin...), found [{_sample(encoder)}]"
        )
    small = next((v for k, v in encoder.items() if k.endswith("large_kernel.small_conv.conv.weight")), None)
    if any(".large_kernel.lkb_reparam." in k for k in encoder):
        kwargs = dict(small_kernel_merged=True)
    else:
        kwargs = dict(small_kernel=0 if small is None else int(small.shape[-1]))
    if "in_proj.weight" in encoder:
        kwargs["in_proj"] = int(encoder["in_proj.weight"].shape[0])
    return Extracted(encoder, dropped, kwargs, RepLKNet, prefix=prefix)


_EXTRACT = {
    "timm": _extract_timm,
    "deit": _extract_deit,
    "mocov3": _extract_mocov3,
    "simmim_vit": _extract_simmim_vit,
    "simmim_swinv2": _extract_simmim_swinv2,
    "replknet": _extract_replknet,
}


def extract(ckpt: dict, layout: str) -> Extracted:
    """Encoder weights of ``ckpt`` read as ``layout`` (one of :data:`LAYOUTS`)."""
    if layout not in _EXTRACT:
        raise ValueError(f"unknown checkpoint layout {layout!r}: use 'auto' or one of {list(LAYOUTS)}")
    container, sd = find_weights(ckpt)
    sd, ddp = _strip_ddp(sd) if layout != "mocov3" else (sd, "")
    out = _EXTRACT[layout](sd)
    path = (f"{container}." if container else "") + ddp
    out.dropped = [path + k for k in out.dropped]
    out.prefix = path + out.prefix
    others = [k for k in ckpt if k != container] if container else []
    out.dropped += others  # optimizer, epoch, args, config, model_ema, ...
    return out


_FAMILY_HINTS = {
    Beit: "SimMIM's ViT is BEiT-style: use a timm Beit name, e.g. 'beit_base_patch16_224' for ViT-B/16",
    SwinTransformerV2: "use a timm Swin V2 name, e.g. 'swinv2_base_window12_192' for SimMIM's SwinV2-B",
    VisionTransformer: "use a timm ViT name, e.g. 'vit_base_patch16_224' or 'deit_base_patch16_224'",
    RepLKNet: "use a RepLKNet name, e.g. 'replknet_31b' for RepLKNet-31B",
}


def _wrong_family(layout: str, cls: type, model_name: str, built: str) -> CheckpointError:
    return CheckpointError(
        f"layout {layout!r} holds {cls.__name__} weights but {model_name!r} builds {built}: {_FAMILY_HINTS[cls]}"
    )


def check_model_name(timm_name: str, layout: str, extracted: Extracted, model_name: str) -> None:
    """Before building: refuse a timm name from another family than Beit, Swin V2 or RepLKNet weights need.

    (The options read off the keys would not even be accepted by another family's constructor.)
    """
    cls = extracted.model_class
    if cls in (Beit, SwinTransformerV2, RepLKNet):
        module = model_entrypoint(get_arch_name(timm_name)).__module__
        if module != cls.__module__:
            raise _wrong_family(layout, cls, model_name, f"a model from {module}")


def check_model(model: nn.Module, layout: str, extracted: Extracted, model_name: str) -> None:
    """After building: raise when ``model`` is not the architecture the layout's weights are written for."""
    cls = extracted.model_class
    if cls is not None and not isinstance(model, cls):
        raise _wrong_family(layout, cls, model_name, f"a {type(model).__name__}")
    wanted = extracted.model_kwargs.get("small_kernel")
    if isinstance(model, RepLKNet) and wanted is not None and model.small_kernel != wanted:
        raise CheckpointError(
            f"the file's RepLKNet has {f'a {wanted}x{wanted}' if wanted else 'no'} small-kernel branch but "
            f"{model_name!r} has {f'a {model.small_kernel}x{model.small_kernel} one' if model.small_kernel else 'none'}: "
            f"pass small_kernel={wanted} (study names: the *_rep backbones have a 3x3 branch)"
        )
    if "dist_token" in extracted.state_dict and getattr(model, "dist_token", None) is None:
        raise CheckpointError(
            f"the file is a distilled DeiT (it has dist_token and head_dist) but {model_name!r} has no "
            "distillation token: use e.g. 'deit_base_distilled_patch16_224'"
        )
