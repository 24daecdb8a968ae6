"""Core math of the attention probes on per-query distributions ``p: [B, H, Q, K]``.

Each row ``p[b, h, q]`` is one query's attention distribution over ``K`` keys (non-negative, sums
to 1). The ViT probes (:mod:`.attention`) and the Swin window probes (:mod:`.windowed`) only differ
in how they build these rows and the query-key distance matrix; the statistics live here once.
"""

from __future__ import annotations

import torch


def _check_rows(p: torch.Tensor) -> None:
    if p.dim() != 4:
        raise ValueError(f"distributions must be [B, H, Q, K], got shape {tuple(p.shape)}")


def example_distance(p: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """Attention-weighted query-key distance per example and head: ``mean_q sum_k p[b,h,q,k] * dist[q,k]``.

    ``p``: ``[B, H, Q, K]``; ``dist``: ``[Q, K]``. Returns ``[B, H]`` in the units of ``dist``.
    """
    _check_rows(p)
    if dist.shape != p.shape[-2:]:
        raise ValueError(f"distance matrix {tuple(dist.shape)} does not match query x key {tuple(p.shape[-2:])}")
    b, h, q, k = p.shape
    # one matrix-vector product over (q, k) instead of a [B, H, Q, K] temporary: ~50x faster on CPU;
    # float32 inputs then differ from a float64 sum by ~1e-5 relative (BLAS accumulation order)
    return (p.reshape(b, h, q * k) @ dist.to(p).reshape(q * k)) / q


def mean_distance(p: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """:func:`example_distance` averaged over examples: ``mean_{b,q} sum_k p[b,h,q,k] * dist[q,k]``. ``[H]``."""
    return example_distance(p, dist).mean(dim=0)


def example_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy in nats per example and head: ``mean_q -sum_k p log p`` with ``0 log 0 = 0`` (``xlogy``).

    ``p``: ``[B, H, Q, K]``. Returns ``[B, H]``, each in ``[0, log K]``.
    """
    _check_rows(p)
    per_query = -torch.special.xlogy(p, p).sum(dim=-1)  # [B, H, Q]
    return per_query.mean(dim=2)


def mean_entropy(p: torch.Tensor) -> torch.Tensor:
    """:func:`example_entropy` averaged over examples: ``mean_{b,q} -sum_k p log p``. ``[H]``."""
    return example_entropy(p).mean(dim=0)


def example_head_kl(p: torch.Tensor, eps: float = 1e-8, support: torch.Tensor | None = None) -> torch.Tensor:
    """Pairwise head KL divergence per example: ``kl[b, i, j] = mean_q KL(p[b,i,q] || p[b,j,q])`` in nats.

    Smoothing keeps the logs finite: on the support every entry gets ``eps`` added and each row is
    renormalised, ``p~ = (p + eps) / sum_k (p + eps)``; then
    ``KL(p~_i || p~_j) = sum_k p~_i log p~_i - sum_k p~_i log p~_j``. Keys off ``support`` (a bool
    ``[B, Q, K]`` or ``[Q, K]``, shared by all heads, True = key may be attended) keep exactly zero
    mass and add nothing. Computed in float64; the diagonal is exactly 0 and tiny negative round-off
    is clamped to 0 (KL is non-negative).

    ``p``: ``[B, H, Q, K]``. Returns ``[B, H, H]``.
    """
    _check_rows(p)
    if eps <= 0:
        raise ValueError(f"eps must be positive to keep log p finite, got {eps}")
    b, h, q, k = p.shape
    smooth = p.to(torch.float64, copy=True).add_(eps)  # a float64 copy (never p itself), then in place
    if support is None:
        smooth /= smooth.sum(dim=-1, keepdim=True)
        log_smooth = smooth.log()
    else:
        keep = _head_shared(support, smooth)  # [B, H, Q, K]
        smooth.masked_fill_(~keep, 0.0)
        smooth /= smooth.sum(dim=-1, keepdim=True)
        log_smooth = smooth.log().masked_fill_(~keep, 0.0)  # 0 off the support, never -inf
    # cross[b, i, j] = mean_q sum_k p~_i log p~_j: one batched matmul over (q, k) (einsum would copy)
    cross = torch.bmm(smooth.view(b, h, q * k), log_smooth.view(b, h, q * k).transpose(1, 2)) / q  # [B, H, H]
    kl = cross.diagonal(dim1=1, dim2=2)[:, :, None] - cross  # [B, H, H]
    return kl.clamp_min(0.0)


def mean_head_kl(p: torch.Tensor, eps: float = 1e-8, support: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`example_head_kl` averaged over examples: ``kl[i, j] = mean_{b,q} KL(p[b,i,q] || p[b,j,q])``.

    ``p``: ``[B, H, Q, K]``. Returns ``[H, H]`` (float64).
    """
    return example_head_kl(p, eps, support).mean(dim=0)


def _head_shared(support: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Broadcast a head-independent ``[B, Q, K]`` or ``[Q, K]`` support to ``p``'s ``[B, H, Q, K]``."""
    if support.dtype != torch.bool or support.dim() not in (2, 3) or support.shape[-2:] != p.shape[-2:]:
        raise ValueError(
            f"support must be a bool [B, Q, K] or [Q, K] mask shared by all heads, got "
            f"{support.dtype} {tuple(support.shape)} for distributions {tuple(p.shape)}"
        )
    if support.dim() == 3 and support.shape[0] != p.shape[0]:
        raise ValueError(f"support batch {support.shape[0]} does not match distributions batch {p.shape[0]}")
    return (support if support.dim() == 3 else support[None]).unsqueeze(1).expand_as(p).to(p.device)


def head_kl_per_head(kl: torch.Tensor) -> torch.Tensor:
    """Mean KL from each head to the others, ``mean_{j != i} kl[i, j]``: the small dots of Fig. 4.

    ``kl``: ``[H, H]`` from :func:`head_kl`, or ``[..., H, H]`` (e.g. per example). Returns ``[..., H]``.
    """
    heads = _check_kl(kl, batched=True)
    return (kl.sum(dim=-1) - kl.diagonal(dim1=-2, dim2=-1)) / (heads - 1)


def layer_kl(kl: torch.Tensor) -> torch.Tensor:
    """Mean KL over ordered head pairs ``i != j``: the large dot of Fig. 4 for one layer. Scalar."""
    heads = _check_kl(kl)
    return (kl.sum() - kl.diagonal().sum()) / (heads * (heads - 1))


def _check_kl(kl: torch.Tensor, batched: bool = False) -> int:
    if (kl.dim() < 2 if batched else kl.dim() != 2) or kl.shape[-1] != kl.shape[-2]:
        raise ValueError(f"head KL must be a square [H, H] matrix, got shape {tuple(kl.shape)}")
    if kl.shape[-1] < 2:
        raise ValueError("head KL needs at least 2 heads to compare")
    return kl.shape[-1]


def query_independent(p: torch.Tensor, support: torch.Tensor | None = None) -> torch.Tensor:
    """Each example's attention with every row replaced by its mean row: the query-independent baseline.

    ``q[b, h, :, k] = mean_q p[b, h, q, k]``: the same distribution over key positions for every query
    (an attention map that only depends on the image, not on where the query is). With a ``support``
    (bool ``[B, Q, K]`` or ``[Q, K]``, e.g. Swin's shifted-window seams), each query keeps the mean
    row on its own allowed keys, renormalised. ``p``: ``[B, H, Q, K]``; returns the same shape.
    """
    _check_rows(p)
    mean = p.mean(dim=2, keepdim=True).expand_as(p)  # [B, H, Q, K]
    if support is None:
        return mean.contiguous()
    kept = mean * _head_shared(support, p)
    return kept / kept.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
