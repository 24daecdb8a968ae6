"""Backbones by name, built through timm so they keep timm's API.

Small configurations for the 32x32 single-channel study are registered here as timm base models
plus overrides; any other timm model name (``vit_base_patch16_224``, ``swinv2_base_window12_192``,
...) goes straight to ``timm.create_model``. Every returned module answers ``forward_features``,
``forward_head`` and ``forward_intermediates``.

Each SwinV2 study backbone is sized to its ViT namesake: same parameter count and forward FLOPs
within 5% (headless, one 1x32x32 image, FLOPs = 2 x multiply-adds of matrix products and
convolutions, attention unfused; see :mod:`mimstudy.models.cost`):

==================  ======  ===================  =========  ========  =======
backbone            width   depths (heads)       params     MFLOPs    vs ViT
==================  ======  ===================  =========  ========  =======
vit_micro_32        64      4 (4)                205,376    30.0
swinv2_micro_32     16      10, 2, 2 (2, 4, 8)   212,572    29.2      +3.5% / -2.7%
vit_mini_32         128     8 (4)                1,597,056  222.0
swinv2_mini_32      48      10, 2, 2 (3, 6, 12)  1,543,890  216.8     -3.3% / -2.4%
vit_tiny_32         192     12 (6)               5,354,688  729.4
swinv2_tiny_32      84      10, 4, 2 (3, 6, 12)  5,286,282  731.0     -1.3% / +0.2%
replk_micro_32      16      6, 1, 3 (kernels)    206,000    30.5      +0.3% / +1.7%
replk_mini_32       48      6, 5, 2 (kernels)    1,620,432  227.4     +1.5% / +2.4%
replk_tiny_32       88      6, 6, 2 (kernels)    5,435,672  721.1     +1.5% / -1.1%
==================  ======  ===================  =========  ========  =======

The RepLKNets (:mod:`mimstudy.models.replknet`, Appendix B) are counted without the small-kernel
branch, i.e. as trained without re-parameterisation and as every model is after merging; the
``*_rep`` variants train a parallel 3x3 branch (+1-2% parameters) that
:meth:`~mimstudy.models.replknet.RepLKNet.reparameterize` merges away. Depths count large kernels
per stage (each RepLK block is followed by a ConvFFN); stage maps are 16, 8 and 4 (stride 2, 4, 8 px).

The Swins embed 2x2-pixel patches (16x16 tokens) and attend in 4x4 windows through three stages
of 16x16, 8x8 and 4x4 tokens (window-to-map ratios 1/4, 1/2, 1, as in the first three stages of
SimMIM's SwinV2-B at 192 px with window 12). Their total stride, 8 px, equals SimMIM's mask patch
size here, as the 32-px stride equals the 32-px mask patches of the official SwinV2 SimMIM. A fourth
stage (2x2 tokens) is left out: each of its blocks would hold 64x the parameters of a first-stage
block for 1/64 of the tokens, so no depth split then matches both parameters and FLOPs closely
(the best, with 24 first-stage blocks, misses by ~9%). Params and FLOPs are matched by putting most
blocks in the cheap high-resolution first stage; SwinV2's continuous position-bias MLP (~1.5k + 512
per head parameters per block) weighs heavily at this width.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import timm
import torch
import torch.nn as nn
from timm.layers import build_sincos2d_pos_embed
from timm.models.swin_transformer import SwinTransformer
from timm.models.swin_transformer_v2 import SwinTransformerV2

from mimstudy.models.geometry import patch_problem, swin_problem, swin_stages, swin_stages_from_args
from mimstudy.models.replknet import RepLKNet  # registers the replk_* / replknet_* names in timm

SWIN_TYPES = (SwinTransformer, SwinTransformerV2)
SWIN_GEOMETRY_ARGS = ("img_size", "patch_size", "window_size", "depths")  # enough to check without building


@dataclass(frozen=True)
class BackboneSpec:
    """A small study backbone: the timm model it derives from and the arguments that shrink it."""

    timm_name: str
    kwargs: dict = field(default_factory=dict)
    description: str = ""
    pos_embed: str = "learn"  # "learn": timm's learned absolute embedding; "sincos": fixed 2-D sin-cos


STUDY_BACKBONES: dict[str, BackboneSpec] = {
    "vit_tiny_32": BackboneSpec(
        "vit_tiny_patch16_224",
        dict(img_size=32, patch_size=4, in_chans=1, embed_dim=192, depth=12, num_heads=6),
        "ViT-Tiny width (192) and depth (12), 6 heads of dim 32, 8x8 patches of 4 px",
    ),
    "vit_mini_32": BackboneSpec(
        "vit_tiny_patch16_224",
        dict(img_size=32, patch_size=4, in_chans=1, embed_dim=128, depth=8, num_heads=4),
        "width 128, depth 8, 4 heads of dim 32, 8x8 patches of 4 px (CPU-friendly)",
    ),
    "vit_micro_32": BackboneSpec(
        "vit_tiny_patch16_224",
        dict(img_size=32, patch_size=4, in_chans=1, embed_dim=64, depth=4, num_heads=4),
        "width 64, depth 4, 4 heads of dim 16: for tests and the CI preset",
    ),
    # SwinV2 sized to the ViTs above (see the table in the module docstring): 2-px patches, 4x4
    # windows, three stages (16x16, 8x8, 4x4 tokens, total stride 8 px). Drop path is off, as in
    # the ViT study backbones (timm's SwinV2 default is 0.1).
    "swinv2_tiny_32": BackboneSpec(
        "swinv2_tiny_window8_256",
        dict(img_size=32, patch_size=2, window_size=4, in_chans=1, embed_dim=84, depths=(10, 4, 2),
             num_heads=(3, 6, 12), drop_path_rate=0.0),
        "SwinV2 matched to vit_tiny_32: width 84-168-336, depths 10-4-2, heads of dim 28, 2-px patches",
    ),
    "swinv2_mini_32": BackboneSpec(
        "swinv2_tiny_window8_256",
        dict(img_size=32, patch_size=2, window_size=4, in_chans=1, embed_dim=48, depths=(10, 2, 2),
             num_heads=(3, 6, 12), drop_path_rate=0.0),
        "SwinV2 matched to vit_mini_32: width 48-96-192, depths 10-2-2, heads of dim 16, 2-px patches",
    ),
    "swinv2_micro_32": BackboneSpec(
        "swinv2_tiny_window8_256",
        dict(img_size=32, patch_size=2, window_size=4, in_chans=1, embed_dim=16, depths=(10, 2, 2),
             num_heads=(2, 4, 8), drop_path_rate=0.0),
        "SwinV2 matched to vit_micro_32: width 16-32-64, depths 10-2-2, heads of dim 8: for tests",
    ),
    # Appendix B: RepLKNet sized to the ViTs (see the table in the module docstring); "_rep" adds the
    # parallel 3x3 small-kernel branch that reparameterize() merges after training.
    **{f"replk_{size}_32{suffix}": BackboneSpec(
        f"replk_{size}_32", dict(small_kernel=small),
        f"RepLKNet matched to vit_{size}_32, kernels 17-15-7, "
        + ("with a parallel 3x3 branch (re-parameterisation)" if small else "no small-kernel branch"),
    ) for size in ("tiny", "mini", "micro") for suffix, small in (("", 0), ("_rep", 3))},
    # Appendix B at paper scale: RepLKNet-31B without the small-kernel branch, and that with SimMIM's
    # 1x1 convolution before the stem (to the stem width; the paper does not give it)
    "replknet_31b_norep": BackboneSpec("replknet_31b", dict(small_kernel=0),
                                       "RepLKNet-31B without the small-kernel branch (Figures 12-14 (a))"),
    "replknet_31b_simmim": BackboneSpec("replknet_31b", dict(small_kernel=0, in_proj=128),
                                        "RepLKNet-31B for SimMIM: no small-kernel branch, a 1x1 conv to 128 channels before the stem"),
}


# The same ViTs with fixed 2-D sin-cos position embeddings (MoCo v3, MAE) instead of learned ones:
# `<name>_sincos`. Same parameters and FLOPs; the embedding is a buffer-like frozen parameter.
STUDY_BACKBONES.update({
    f"{name}_sincos": BackboneSpec(spec.timm_name, dict(spec.kwargs), spec.description + "; fixed 2-D sin-cos position embedding", "sincos")
    for name, spec in list(STUDY_BACKBONES.items()) if name.startswith("vit_")
})


class ModelConfigError(ValueError):
    """A backbone cannot be built from the given name or arguments; the message says why."""


def available_backbones() -> list[str]:
    """Names registered for the small-scale study (any timm model name is accepted too)."""
    return sorted(STUDY_BACKBONES)


def _patch_size(spec_kwargs: dict, name: str) -> int | None:
    if "patch_size" in spec_kwargs:
        return int(spec_kwargs["patch_size"])
    for token in name.split("_"):
        if token.startswith("patch") and token[5:].isdigit():
            return int(token[5:])
    return None


def _resolve(name: str, img_size: int | None, overrides: dict) -> tuple[str, dict]:
    """timm model name and constructor kwargs for backbone ``name``, validated without building."""
    if name in STUDY_BACKBONES:
        spec = STUDY_BACKBONES[name]
        timm_name, kwargs = spec.timm_name, dict(spec.kwargs)
    elif timm.is_model(name):
        timm_name, kwargs = name, {}
    else:
        raise ModelConfigError(
            f"unknown backbone {name!r}: use one of the study backbones {available_backbones()} "
            "or a timm model name (see timm.list_models())"
        )
    kwargs.update(overrides)
    if img_size is not None:
        kwargs["img_size"] = img_size
    size = kwargs.get("img_size")
    patch = _patch_size(kwargs, timm_name)
    if size is not None and patch is not None and size % patch:
        raise ModelConfigError(
            f"patch size {patch} does not divide image size {size}: pick an image size that is a "
            f"multiple of {patch} (e.g. {size - size % patch or patch})"
        )
    return timm_name, kwargs


def is_swin(model: nn.Module) -> bool:
    """Whether ``model`` is a timm Swin Transformer (v1 or v2): NHWC stages under ``model.layers``."""
    return isinstance(model, SWIN_TYPES)


def check_geometry(model: nn.Module, name: str | None = None) -> None:
    """Raise :class:`ModelConfigError` if timm would silently pad inside ``model``.

    A patch size must divide the image. For Swin, every stage's token map must also be a multiple
    of its window and even before each patch merging (see :mod:`mimstudy.models.geometry`).
    """
    embed = getattr(model, "patch_embed", None)
    img = getattr(embed, "img_size", None)
    if img is None:
        return
    problem = patch_problem(img, embed.patch_size)
    if problem is None and is_swin(model):
        problem = swin_problem(img, embed.patch_size, swin_stages(model))
    if problem:
        raise ModelConfigError(f"{name or type(model).__name__!r}: {problem}")


def _is_swin_name(timm_name: str) -> bool:
    return timm_name.startswith(("swin_", "swinv2_")) and not timm_name.startswith("swinv2_cr")


def validate_backbone(name: str, img_size: int | None = None, **overrides) -> None:
    """Raise :class:`ModelConfigError` if :func:`create_backbone` would reject these arguments.

    A Swin's geometry is derived from its arguments when they name image, patch and window sizes and
    depths (all study backbones do); otherwise it is read from a copy built on the ``meta`` device.
    """
    timm_name, kwargs = _resolve(name, img_size, overrides)
    if not _is_swin_name(timm_name):
        return
    if all(k in kwargs for k in SWIN_GEOMETRY_ARGS):
        img, patch = kwargs["img_size"], kwargs["patch_size"]
        problem = patch_problem(img, patch) or swin_problem(
            img, patch, swin_stages_from_args(img, patch, kwargs["window_size"], len(kwargs["depths"]))
        )
        if problem:
            raise ModelConfigError(f"{name!r}: {problem}")
    else:
        check_geometry(_build(name, timm_name, dict(kwargs, device="meta")), name)


def _build(name: str, timm_name: str, kwargs: dict, num_classes: int = 0) -> nn.Module:
    try:
        return timm.create_model(timm_name, pretrained=False, num_classes=num_classes, **kwargs)
    except (TypeError, AssertionError, ValueError) as err:
        shown = {k: v for k, v in kwargs.items() if k != "device"}
        raise ModelConfigError(f"cannot build {name!r} with {shown}: {err}") from err


def create_backbone(name: str, num_classes: int = 10, img_size: int | None = None, **overrides) -> nn.Module:
    """Build backbone ``name`` (a study name or any timm model name) without pretrained weights.

    ``num_classes=0`` gives a headless feature extractor. ``img_size`` and ``overrides`` are passed
    to timm's constructor. Raises :class:`ModelConfigError` for unknown names, a patch size that
    does not divide the image size, or a Swin whose windows or patch merging would pad a stage's
    token map (see :func:`check_geometry`).
    """
    timm_name, kwargs = _resolve(name, img_size, overrides)
    model = _build(name, timm_name, kwargs, num_classes)
    check_geometry(model, name)
    spec = STUDY_BACKBONES.get(name)
    if spec is not None and spec.pos_embed == "sincos":
        fix_sincos_pos_embed(model)
    return model


def fix_sincos_pos_embed(vit: nn.Module, temperature: float = 10000.0) -> nn.Module:
    """Set a timm ViT's position embedding to fixed 2-D sin-cos values and freeze it (MoCo v3, MAE).

    Each patch token gets the sines, then the cosines, of both grid coordinates times ``dim / 4``
    frequencies ``w = temperature ** (-k / (dim / 4))`` (timm's ``build_sincos2d_pos_embed``); prefix
    tokens (CLS) get zeros, as in MoCo v3. The parameter stays in the state dict, so a checkpoint
    holds the values and loads into the same backbone name.
    """
    if getattr(vit, "pos_embed", None) is None or vit.embed_dim % 4:
        raise ModelConfigError(f"sin-cos position embeddings need a ViT with a position embedding and a width "
                               f"divisible by 4, got {type(vit).__name__}")
    rows, cols = (int(g) for g in vit.patch_embed.grid_size)
    table = build_sincos2d_pos_embed([rows, cols], dim=vit.embed_dim, temperature=temperature)  # [rows*cols, D]
    prefix = vit.pos_embed.shape[1] - rows * cols
    with torch.no_grad():
        vit.pos_embed.zero_()
        vit.pos_embed[0, prefix:] = table.to(vit.pos_embed.dtype)
    vit.pos_embed.requires_grad_(False)
    return vit


def is_replknet(model: nn.Module) -> bool:
    """Whether ``model`` is a :class:`~mimstudy.models.replknet.RepLKNet` (Appendix B's large-kernel ConvNet)."""
    return isinstance(model, RepLKNet)


def in_chans_of(model: nn.Module) -> int:
    """Image channels the model takes."""
    return model.in_chans if is_replknet(model) else model.patch_embed.proj.in_channels


def patch_size_of(model: nn.Module) -> int:
    """Pixel size of one token of the model's patch embedding (a RepLKNet: 1, its in-projection is per pixel)."""
    if is_replknet(model):
        return 1
    size = model.patch_embed.patch_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def grid_size_of(model: nn.Module) -> tuple[int, int]:
    """Token grid ``(rows, cols)`` of the model's patch embedding (Swin: of its first stage)."""
    return tuple(int(g) for g in model.patch_embed.grid_size)


def model_stride(model: nn.Module) -> int:
    """Input pixels per token of the last feature map: the patch size for a ViT, and for a Swin
    the patch size times 2 per patch merging (``patch_size * 2**(num_stages - 1)``); for a RepLKNet
    its stem's stride times 2 per transition."""
    if is_replknet(model):
        return model.stride
    if is_swin(model):
        merges = sum(not isinstance(stage.downsample, nn.Identity) for stage in model.layers)
        return patch_size_of(model) * 2**merges
    if hasattr(model, "patch_embed") and hasattr(model, "blocks"):
        return patch_size_of(model)
    raise TypeError(f"model_stride knows timm ViTs, Swins and RepLKNets, got {type(model).__name__}")
