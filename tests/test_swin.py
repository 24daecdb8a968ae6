"""SwinV2 study backbones: sized like their ViT namesakes, timm's API, clear errors on bad geometry."""

import pytest
import timm
import torch

from mimstudy.models.geometry import swin_stages, swin_stages_from_args

from mimstudy.models.cost import count_flops, count_params
from mimstudy.models.backbones import (
    ModelConfigError,
    available_backbones,
    create_backbone,
    grid_size_of,
    model_stride,
    patch_size_of,
    validate_backbone,
)

TOLERANCE = 0.05  # relative difference allowed in parameters and in FLOPs


@pytest.fixture(scope="module")
def micro():
    torch.manual_seed(0)
    return create_backbone("swinv2_micro_32", num_classes=10).eval()


@pytest.mark.parametrize("size", ["micro", "mini", "tiny"])
def test_swin_matches_vit_params_and_flops(size):
    vit = create_backbone(f"vit_{size}_32", num_classes=0, device="meta")  # shapes only: fast
    swin = create_backbone(f"swinv2_{size}_32", num_classes=0, device="meta")
    assert count_params(swin) == pytest.approx(count_params(vit), rel=TOLERANCE)
    assert count_flops(swin) == pytest.approx(count_flops(vit), rel=TOLERANCE)


def test_flop_count_sees_attention_and_restores_fused_flag():
    vit = create_backbone("vit_micro_32", num_classes=0)
    flags = [m.fused_attn for m in vit.modules() if hasattr(m, "fused_attn")]
    tokens, dim, depth = 65, 64, 4
    attention = depth * 2 * (2 * tokens * tokens * dim)  # q k^T and attn v, 2 FLOPs per multiply-add
    linear = depth * 2 * tokens * 12 * dim * dim  # qkv, proj, mlp
    assert count_flops(vit) == linear + attention + 2 * 64 * 16 * dim  # + patch embedding
    assert [m.fused_attn for m in vit.modules() if hasattr(m, "fused_attn")] == flags


def test_registry_lists_swins():
    assert {"swinv2_micro_32", "swinv2_mini_32", "swinv2_tiny_32"} <= set(available_backbones())


def test_geometry_helpers():
    vit = create_backbone("vit_micro_32")
    assert (patch_size_of(vit), grid_size_of(vit), model_stride(vit)) == (4, (8, 8), 4)
    swin = create_backbone("swinv2_micro_32")
    assert (patch_size_of(swin), grid_size_of(swin), model_stride(swin)) == (2, (16, 16), 8)
    four = create_backbone("swinv2_micro_32", depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16))
    assert model_stride(four) == 16


def test_timm_api(micro):
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        features = micro.forward_features(x)
        assert features.shape == (2, 4, 4, 64)  # NHWC, 32 px / stride 8
        assert micro.forward_head(features).shape == (2, 10)
        stages = micro.forward_intermediates(x, intermediates_only=True)
    assert [tuple(s.shape) for s in stages] == [(2, 16, 16, 16), (2, 32, 8, 8), (2, 64, 4, 4)]  # NCHW


def test_windows_shift_on_the_two_windowed_stages_only(micro):
    geometry = [(tuple(b.input_resolution), tuple(b.window_size), any(b.shift_size))
                for stage in micro.layers for b in stage.blocks[:2]]
    assert geometry == [((16, 16), (4, 4), False), ((16, 16), (4, 4), True),
                        ((8, 8), (4, 4), False), ((8, 8), (4, 4), True),
                        ((4, 4), (4, 4), False), ((4, 4), (4, 4), False)]


@pytest.mark.parametrize("overrides, message", [
    (dict(img_size=33), "patch size 2 does not divide image size 33"),
    (dict(patch_size=3), "patch size 3 does not divide image size 32"),
    (dict(img_size=36), "window 4x4 does not divide stage 0's 18x18 token map"),
    (dict(window_size=3), "window 3x3 does not divide stage 0's 16x16"),
    (dict(img_size=24, window_size=12, depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16)),
     "stage 3 merges 2x2 patches of a 3x3 token map"),
])
def test_bad_geometry_is_rejected_clearly(overrides, message):
    with pytest.raises(ModelConfigError, match=message):
        validate_backbone("swinv2_micro_32", **overrides)  # checked on the meta device
    with pytest.raises(ModelConfigError, match=message):
        create_backbone("swinv2_micro_32", **overrides)


def test_windows_larger_than_a_stage_are_accepted():
    validate_backbone("swinv2_micro_32", window_size=8)  # stages 1-2 shrink the window to their map
    validate_backbone("swinv2_tiny_window8_256")  # timm names are validated with their own defaults


@pytest.mark.parametrize("timm_name, img, patch, window, stages", [
    ("swinv2_tiny_window8_256", 32, 2, 4, 3),
    ("swinv2_tiny_window8_256", 36, 2, 4, 3),  # windows pad
    ("swinv2_tiny_window8_256", 24, 2, 12, 4),  # merging pads, windows shrink
    ("swinv2_tiny_window8_256", 32, 2, (4, 4, 8), 3),  # one window per stage
    ("swin_tiny_patch4_window7_224", 40, 2, 4, 3),
])
def test_geometry_from_arguments_matches_timm(timm_name, img, patch, window, stages):
    """The rules that check a configuration without building it agree with timm's built model."""
    model = timm.create_model(timm_name, img_size=img, patch_size=patch, window_size=window, in_chans=1,
                              embed_dim=4, depths=(1,) * stages, num_heads=(1,) * stages, num_classes=0)
    assert swin_stages_from_args(img, patch, window, stages) == swin_stages(model)
