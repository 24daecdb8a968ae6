"""Backbones by name, built through timm so they keep timm's API.

Small configurations for the 32x32 single-channel study are registered here as timm base models
plus overrides; any other timm model name (``vit_base_patch16_224``, ``swinv2_base_window12_192``,
...) goes straight to ``timm.create_model``. Every returned module answers ``forward_features``,
``forward_head`` and ``forward_intermediates``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import timm
import torch.nn as nn


@dataclass(frozen=True)
class BackboneSpec:
    """A small study backbone: the timm model it derives from and the arguments that shrink it."""

    timm_name: str
    kwargs: dict = field(default_factory=dict)
    description: str = ""


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
}


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


def validate_backbone(name: str, img_size: int | None = None, **overrides) -> None:
    """Raise :class:`ModelConfigError` if :func:`create_backbone` would reject these arguments."""
    _resolve(name, img_size, overrides)


def create_backbone(name: str, num_classes: int = 10, img_size: int | None = None, **overrides) -> nn.Module:
    """Build backbone ``name`` (a study name or any timm model name) without pretrained weights.

    ``num_classes=0`` gives a headless feature extractor. ``img_size`` and ``overrides`` are passed
    to timm's constructor. Raises :class:`ModelConfigError` for unknown names or a patch size that
    does not divide the image size.
    """
    timm_name, kwargs = _resolve(name, img_size, overrides)
    try:
        return timm.create_model(timm_name, pretrained=False, num_classes=num_classes, **kwargs)
    except (TypeError, AssertionError, ValueError) as err:
        raise ModelConfigError(f"cannot build {name!r} with {kwargs}: {err}") from err


def patch_size_of(model: nn.Module) -> int:
    """Pixel size of one token of the model's patch embedding."""
    size = model.patch_embed.patch_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def grid_size_of(model: nn.Module) -> tuple[int, int]:
    """Token grid ``(rows, cols)`` of the model's patch embedding."""
    return tuple(int(g) for g in model.patch_embed.grid_size)
