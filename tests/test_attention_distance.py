import itertools
import math

import pytest
import torch

from mimstudy.models.backbones import create_backbone
from mimstudy.probes import attention_distance, patch_attention, patch_distances, probe_attention
from mimstudy.probes.distributions import example_distance, query_independent


def with_prefix(patch_attn: torch.Tensor, prefix_mass: float = 0.3) -> torch.Tensor:
    """Embed [B,H,L,L] patch attention into [B,H,1+L,1+L] with a CLS token taking some mass."""
    b, h, l, _ = patch_attn.shape
    full = torch.zeros(b, h, l + 1, l + 1)
    full[:, :, 1:, 1:] = patch_attn * (1 - prefix_mass)
    full[:, :, 1:, 0] = prefix_mass
    full[:, :, 0, :] = 1.0 / (l + 1)
    return full


def test_identity_attention_has_zero_distance():
    attn = with_prefix(torch.eye(9).expand(2, 3, 9, 9).clone())
    assert torch.allclose(attention_distance(attn, (3, 3), patch_size=16), torch.zeros(3))


def test_hand_computation_on_2x2_grid():
    # patch 0 at (0,0) attends half to itself and half to patch 3 at (1,1): distance sqrt(2)
    # every other patch attends to its right/left neighbour: distance 1
    a = torch.zeros(1, 1, 4, 4)
    a[0, 0, 0, 0], a[0, 0, 0, 3] = 0.5, 0.5
    a[0, 0, 1, 0] = 1.0
    a[0, 0, 2, 3] = 1.0
    a[0, 0, 3, 2] = 1.0
    expected = (0.5 * math.sqrt(2) + 1 + 1 + 1) / 4 * 4  # x patch size 4 px
    got = attention_distance(with_prefix(a), (2, 2), patch_size=4)
    assert got.item() == pytest.approx(expected)


def test_uniform_attention_gives_mean_pairwise_distance():
    rows, cols, p = 3, 4, 2
    l = rows * cols
    attn = with_prefix(torch.full((1, 2, l, l), 1.0 / l))
    coords = list(itertools.product(range(rows), range(cols)))
    mean_pairwise = sum(math.dist(a, b) for a in coords for b in coords) / l**2 * p
    assert torch.allclose(attention_distance(attn, (rows, cols), p), torch.full((2,), mean_pairwise))


def test_prefix_mass_is_renormalised_away():
    base = torch.softmax(torch.randn(2, 3, 16, 16), dim=-1)
    a = attention_distance(with_prefix(base, 0.1), (4, 4), 4)
    b = attention_distance(with_prefix(base, 0.8), (4, 4), 4)
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(patch_attention(with_prefix(base, 0.5)).sum(-1), torch.ones(2, 3, 16))


def test_no_prefix_tokens():
    attn = torch.eye(4).expand(1, 1, 4, 4)
    assert attention_distance(attn, (2, 2), 1, num_prefix_tokens=0).item() == 0.0


def test_distance_matrix_is_euclidean_in_pixels():
    d = patch_distances((2, 3), patch_size=4)
    assert d.shape == (6, 6)
    assert d[0, 5].item() == pytest.approx(4 * math.sqrt(1 + 4))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\[B, H, N, N\]"):
        attention_distance(torch.rand(2, 5, 5), (2, 2), 4)
    with pytest.raises(ValueError, match="does not match grid"):
        attention_distance(torch.rand(1, 1, 10, 10), (2, 2), 4)


def test_probe_attention_on_timm_vit_is_streaming_consistent():
    torch.manual_seed(0)
    model = create_backbone("vit_micro_32")
    images = torch.randn(6, 1, 32, 32)
    one_batch = probe_attention(model, images, batch_size=6)
    small_batches = probe_attention(model, images, batch_size=4)
    da = one_batch["attention_distance"]
    assert da.dims == ("layer", "head", "image") and da.shape == (4, 4, 6)
    assert list(da["layer"].values) == [1, 2, 3, 4]
    assert torch.allclose(torch.from_numpy(da.values), torch.from_numpy(small_batches["attention_distance"].values), atol=1e-5)
    # distances lie between 0 and the grid's diameter (7 * sqrt(2) patches of 4 px)
    assert (da.values >= 0).all() and (da.values <= 4 * 7 * math.sqrt(2)).all()


def test_query_independent_rows_are_the_mean_row():
    p = torch.softmax(torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(0)), dim=-1)
    q = query_independent(p)
    torch.testing.assert_close(q, p.mean(dim=2, keepdim=True).expand_as(p))
    torch.testing.assert_close(query_independent(q), q)  # already query-independent: unchanged
    support = torch.rand(5, 5, generator=torch.Generator().manual_seed(1)) > 0.3
    support |= torch.eye(5, dtype=torch.bool)
    masked = query_independent(p, support)
    assert (masked[..., ~support] == 0).all()
    torch.testing.assert_close(masked.sum(-1), torch.ones(2, 3, 5))
    dist = patch_distances((1, 5), 1.0)
    # attention that only depends on the image has the same distance as its baseline
    torch.testing.assert_close(example_distance(q, dist), example_distance(query_independent(q), dist))
