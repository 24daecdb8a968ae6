"""Swin window-attention probes: closed forms, shifted-window masks, maps from a tiny timm SwinV2."""

import math

import pytest
import timm
import torch

from mimstudy.probes import (
    SwinAttentionMaps,
    attention_distance,
    head_kl,
    swin_attention_maps,
    window_attention_distance,
    window_attention_entropy,
    window_head_kl,
)


def test_identity_window_attention_has_zero_distance_entropy_and_kl():
    attn = torch.eye(16).expand(8, 3, 16, 16)  # 8 windows of 4x4 tokens, 3 heads
    assert torch.allclose(window_attention_distance(attn, 4, pixel_stride=8.0), torch.zeros(3))
    assert torch.allclose(window_attention_entropy(attn), torch.zeros(3), atol=1e-7)
    assert torch.allclose(window_head_kl(attn), torch.zeros(3, 3, dtype=torch.float64), atol=1e-6)


def test_window_distance_is_window_local_grid_distance_times_stride():
    attn = torch.zeros(2, 1, 4, 4)  # 2x2 windows: every query attends to the token right of / left of it
    for query, key in [(0, 1), (1, 0), (2, 3), (3, 2)]:
        attn[:, :, query, key] = 1.0
    assert window_attention_distance(attn, (2, 2), pixel_stride=8.0).tolist() == [8.0]
    uniform = torch.full((2, 1, 4, 4), 0.25)
    mean_to_all = (0 + 1 + 1 + math.sqrt(2)) / 4  # from any corner of a 2x2 window
    assert window_attention_distance(uniform, 2, pixel_stride=2.0).item() == pytest.approx(2 * mean_to_all)


def test_window_probes_agree_with_vit_probes_on_one_window():
    attn = torch.randn(3, 4, 9, 9).softmax(dim=-1)
    assert torch.allclose(window_attention_distance(attn, 3, 4.0), attention_distance(attn, (3, 3), 4.0, 0))
    assert torch.allclose(window_head_kl(attn), head_kl(attn, num_prefix_tokens=0), atol=1e-8)


def shifted_window_attention(pair_mask: torch.Tensor, heads: int = 2) -> torch.Tensor:
    """Softmax with timm's -100 on disallowed pairs: ``[nW, N, N]`` mask -> ``[nW, H, N, N]``."""
    logits = torch.randn(pair_mask.shape[0], heads, *pair_mask.shape[1:], generator=torch.Generator().manual_seed(0))
    return (logits - 100.0 * (~pair_mask).unsqueeze(1)).softmax(dim=-1)


def two_region_mask() -> torch.Tensor:
    """One 2x2 window whose left and right columns come from different regions (the roll's seam)."""
    region = torch.tensor([0, 1, 0, 1])
    return (region[:, None] == region[None, :])[None]  # [1, 4, 4]


def test_shifted_mask_pairs_count_as_zero_attention():
    pair_mask = two_region_mask()
    attn = shifted_window_attention(pair_mask)
    assert attn[:, :, ~pair_mask[0]].max() < 1e-30  # what timm's -100 leaves behind
    # Each query may only attend to itself and the token below it (1 grid step): distance 1 * stride.
    explicit = window_attention_distance(attn, 2, 4.0, pair_mask=pair_mask)
    inferred = window_attention_distance(attn, 2, 4.0)
    assert torch.allclose(explicit, inferred)
    below_weight = attn[0, :, [0, 1, 2, 3], [2, 3, 0, 1]].mean(dim=-1)  # [H]
    assert torch.allclose(explicit, 4.0 * below_weight, atol=1e-6)
    entropy = window_attention_entropy(attn, pair_mask)
    assert (entropy <= math.log(2) + 1e-6).all()  # only 2 allowed keys per query
    kl = window_head_kl(attn, pair_mask)
    assert torch.allclose(kl, window_head_kl(attn))  # the threshold finds the same pairs
    assert (kl >= 0).all() and (kl.diagonal() == 0).all()


def test_masked_pairs_get_no_smoothing_mass_in_head_kl():
    pair_mask = two_region_mask()
    attn = torch.zeros(1, 2, 4, 4)
    attn[0, 0] = torch.eye(4)  # head 0 attends to itself
    attn[0, 1] = torch.eye(4)[[2, 3, 0, 1]]  # head 1 to the token below: both inside the allowed pairs
    kl = window_head_kl(attn, pair_mask, eps=1e-6)
    # with eps only on the 2 allowed keys: p~ = (1 + e, e) / (1 + 2e) against (e, 1 + e) / (1 + 2e)
    e = 1e-6
    expected = ((1 + e) * math.log((1 + e) / e) + e * math.log(e / (1 + e))) / (1 + 2 * e)
    assert kl[0, 1].item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: window_attention_distance(torch.rand(2, 1, 9, 9), 4, 1.0), "4x4 tokens"),
        (lambda: window_attention_entropy(torch.rand(2, 1, 16)), r"\[B \* num_windows, H, N, N\]"),
        (lambda: window_attention_entropy(torch.rand(2, 1, 4, 4), torch.ones(2, 4, 4)), "bool"),
        (lambda: window_attention_entropy(torch.rand(3, 1, 4, 4), torch.ones(2, 4, 4, dtype=torch.bool)), "tile"),
        (lambda: window_attention_entropy(torch.rand(2, 1, 4, 4), torch.zeros(2, 4, 4, dtype=torch.bool)), "allowed"),
    ],
)
def test_bad_inputs_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.fixture(scope="module")
def tiny_swinv2() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(
        "swinv2_tiny_window8_256",
        pretrained=False,
        img_size=32,
        patch_size=2,
        window_size=4,
        embed_dim=32,
        depths=(2, 2),
        num_heads=(2, 4),
        in_chans=1,
        num_classes=10,
    )


@pytest.fixture(scope="module")
def swin_maps(tiny_swinv2) -> dict:
    return SwinAttentionMaps(tiny_swinv2)(torch.randn(2, 1, 32, 32))


def test_swin_attention_maps_geometry(swin_maps):
    maps = swin_maps
    assert list(maps) == ["layers.0.blocks.0", "layers.0.blocks.1", "layers.1.blocks.0", "layers.1.blocks.1"]
    # stage 0: 16x16 tokens of 2 px -> 16 windows per image; stage 1: 8x8 tokens of 4 px -> 4 windows
    expected = [(32, 2, 2.0, False), (32, 2, 2.0, True), (8, 4, 4.0, False), (8, 4, 4.0, True)]
    for entry, (windows, heads, stride, shifted) in zip(maps.values(), expected):
        assert entry.attn.shape == (windows, heads, 16, 16) and entry.window_size == (4, 4)
        assert entry.pixel_stride == stride and entry.shifted == shifted  # regular / shifted alternate
        assert entry.pair_mask.shape == (windows, 16, 16) and entry.pair_mask.all() != shifted
        assert torch.allclose(entry.attn.sum(dim=-1), torch.ones(()), atol=1e-5)
        assert entry.attn.masked_fill(entry.pair_mask.unsqueeze(1), 0.0).max() < 1e-20  # timm's -100 pairs


def test_probes_on_tiny_swinv2_attention_maps(swin_maps):
    for entry in swin_maps.values():
        heads, tokens = entry.attn.shape[1], entry.attn.shape[-1]
        distance = window_attention_distance(entry.attn, entry.window_size, entry.pixel_stride, entry.pair_mask)
        entropy = window_attention_entropy(entry.attn, entry.pair_mask)
        kl = window_head_kl(entry.attn, entry.pair_mask)
        assert distance.shape == entropy.shape == (heads,) and kl.shape == (heads, heads)
        assert ((distance > 0) & (distance < entry.pixel_stride * 3 * math.sqrt(2))).all()
        assert ((entropy > 0) & (entropy <= math.log(tokens) + 1e-5)).all()
        assert torch.isfinite(kl).all() and (kl >= 0).all() and (kl.diagonal() == 0).all()
        assert torch.allclose(entropy, window_attention_entropy(entry.attn))  # threshold finds the same pairs


def test_swin_attention_maps_reject_images_of_another_size(tiny_swinv2):
    with pytest.raises(ValueError, match="built for"):
        swin_attention_maps(tiny_swinv2, torch.randn(1, 1, 48, 48))


def test_swin_v1_with_fused_attention_disabled():
    model = timm.create_model(
        "swin_tiny_patch4_window7_224", pretrained=False, img_size=32, patch_size=2, window_size=4,
        embed_dim=16, depths=(2,), num_heads=(2,), in_chans=1, num_classes=0,
    )  # fmt: skip
    maps = swin_attention_maps(model, torch.randn(1, 1, 32, 32))
    assert [entry.shifted for entry in maps.values()] == [False, True]
    assert all(entry.attn.shape == (16, 2, 16, 16) for entry in maps.values())
