"""ViT attention probes: closed forms on hand-made maps, then maps from a real timm ViT."""

import math

import pytest
import torch

from mimstudy.models.backbones import create_backbone, grid_size_of, patch_size_of
from mimstudy.probes import (
    AttentionMaps,
    attention_distance,
    attention_entropy,
    head_kl,
    head_kl_per_head,
    layer_kl,
)


def with_cls(patch_attn: torch.Tensor) -> torch.Tensor:
    """Embed ``[B, H, L, L]`` patch attention into ``[B, H, 1 + L, 1 + L]`` with a CLS token."""
    b, h, n, _ = patch_attn.shape
    full = torch.zeros(b, h, n + 1, n + 1)
    full[:, :, 0, :] = 1.0 / (n + 1)
    full[:, :, 1:, 0] = 0.5  # CLS share is dropped and rows renormalised by the probes
    full[:, :, 1:, 1:] = 0.5 * patch_attn
    return full


def test_identity_attention_has_zero_entropy_and_zero_head_kl():
    attn = with_cls(torch.eye(9).expand(2, 3, 9, 9))
    assert torch.allclose(attention_entropy(attn), torch.zeros(3), atol=1e-7)
    assert torch.allclose(head_kl(attn), torch.zeros(3, 3, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(attention_distance(attn, (3, 3), 4.0), torch.zeros(3))


def test_uniform_attention_has_entropy_log_l():
    attn = torch.full((2, 4, 17, 17), 1 / 17)  # uniform over CLS + 16 patches
    assert torch.allclose(attention_entropy(attn), torch.full((4,), math.log(16)), atol=1e-6)
    assert torch.allclose(attention_entropy(attn, num_prefix_tokens=0), torch.full((4,), math.log(17)), atol=1e-6)


def test_head_kl_matches_hand_computation():
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.9, 0.1])
    attn = torch.stack([p.expand(2, 2), q.expand(2, 2)])[None]  # [1, 2 heads, 2 queries, 2 keys]
    kl = head_kl(attn, num_prefix_tokens=0)
    pq = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    qp = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    expected = torch.tensor([[0.0, pq], [qp, 0.0]], dtype=torch.float64)
    assert torch.allclose(kl, expected, atol=1e-6)
    assert head_kl_per_head(kl).tolist() == pytest.approx([pq, qp])
    assert layer_kl(kl).item() == pytest.approx((pq + qp) / 2)


def test_head_kl_is_finite_with_zero_weights_and_grows_with_disjoint_heads():
    one_hot = torch.eye(4)
    attn = torch.stack([one_hot, one_hot.roll(1, dims=1)])[None]  # heads attend to disjoint keys
    kl = head_kl(attn, num_prefix_tokens=0, eps=1e-8)
    assert torch.isfinite(kl).all() and kl[0, 1] > 15  # ~ log(1 / eps)


def test_head_kl_on_random_maps_is_nonnegative_with_zero_diagonal():
    attn = torch.randn(3, 5, 10, 10).softmax(dim=-1)
    kl = head_kl(attn)
    assert kl.shape == (5, 5)
    assert (kl >= 0).all() and (kl.diagonal() == 0).all()
    assert kl[~torch.eye(5, dtype=torch.bool)].min() > 0


def test_head_kl_reductions_average_off_diagonal():
    kl = torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, 4.0], [5.0, 6.0, 0.0]])
    assert head_kl_per_head(kl).tolist() == [1.5, 3.5, 5.5]
    assert layer_kl(kl).item() == pytest.approx(21 / 6)


@pytest.mark.parametrize(
    "call",
    [
        lambda: attention_entropy(torch.rand(2, 3, 5)),
        lambda: attention_entropy(torch.rand(2, 3, 5, 4)),
        lambda: head_kl(torch.rand(1, 2, 5, 5), eps=0.0),
        lambda: head_kl_per_head(torch.zeros(1, 1)),
        lambda: layer_kl(torch.zeros(2, 3)),
    ],
)
def test_bad_inputs_raise(call):
    with pytest.raises(ValueError):
        call()


def test_probes_on_vit_micro_attention_maps():
    torch.manual_seed(0)
    model = create_backbone("vit_micro_32")
    maps = AttentionMaps(model)(torch.randn(2, 1, 32, 32))
    grid, patch = grid_size_of(model), patch_size_of(model)
    num_patches = grid[0] * grid[1]
    assert len(maps) == 4
    for attn in maps.values():
        assert attn.shape == (2, 4, 1 + num_patches, 1 + num_patches)
        entropy, kl = attention_entropy(attn), head_kl(attn)
        distance = attention_distance(attn, grid, patch)
        assert entropy.shape == distance.shape == (4,) and kl.shape == (4, 4)
        assert ((entropy > 0) & (entropy <= math.log(num_patches) + 1e-5)).all()
        assert torch.isfinite(kl).all() and (kl >= 0).all()
        assert ((distance > 0) & (distance < 32 * math.sqrt(2))).all()


def test_fast_kl_and_distance_match_a_float64_reference_and_leave_inputs_alone():
    from mimstudy.probes import patch_distances
    from mimstudy.probes.distributions import example_distance, example_head_kl

    gen = torch.Generator().manual_seed(0)
    for sharpness in (0.05, 3.0):  # near-uniform heads (KL ~1e-3) and peaked ones (KL up to ~7)
        p = (torch.randn(2, 3, 16, 16, generator=gen) * sharpness).softmax(-1).double()
        before = p.clone()
        smooth = (p + 1e-8) / (p + 1e-8).sum(-1, keepdim=True)
        reference = (smooth[:, :, None] * (smooth[:, :, None].log() - smooth[:, None].log())).sum(-1).mean(-1)
        torch.testing.assert_close(example_head_kl(p), reference, rtol=1e-9, atol=1e-12)
        assert torch.equal(p, before)  # the float64 input is not smoothed in place
        dist = patch_distances((4, 4), 8.0).double()
        torch.testing.assert_close(example_distance(p, dist), (p * dist).sum(-1).mean(-1), rtol=1e-12, atol=0)
        torch.testing.assert_close(example_distance(p.float(), dist.float()).double(),
                                   (p * dist).sum(-1).mean(-1), rtol=1e-5, atol=0)
