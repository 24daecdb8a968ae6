"""Attention probes for Swin's window attention (the paper's Appendix A.1, Figs. 8-10).

Swin (Liu et al. 2021; SwinV2, Liu et al. 2022) attends inside non-overlapping ``Wh x Ww`` windows:
one block's softmax maps are ``[B * nW, H, N, N]`` with ``N = Wh * Ww`` tokens per window, ordered
row-major inside the window, and window ``w`` of image ``b`` at index ``b * nW + w`` (timm's
``window_partition``). Consecutive blocks alternate regular windows (even blocks, shift 0) and
windows shifted by ``(Wh // 2, Ww // 2)`` (odd blocks), realised as a cyclic roll of the feature
map. In a shifted block, a window that straddles the roll's seam holds tokens from different image
regions; timm adds ``-100`` to the logits of those pairs before the softmax so they carry ~0
attention. The probes treat them as exactly zero attention: pass the explicit ``pair_mask``
(bool, True = the pair may attend, as returned by :class:`.extract.SwinAttentionMaps`), or leave
it ``None`` to drop every pair that no head weights above ``mask_threshold``. Off-mask weights are
zeroed and rows renormalised before the shared statistics of :mod:`.distributions` run.

Distances are window-local: grid steps between the query and key positions inside the window,
times ``pixel_stride``, the input pixels per token at that stage (patch size times ``2 ** stage``).
Allowed pairs never cross the seam, so window-local distance is their true distance on the image.
"""

from __future__ import annotations

import torch

from mimstudy.probes.attention import patch_distances
from mimstudy.probes.distributions import mean_distance, mean_entropy, mean_head_kl

# A masked pair's weight is about exp(-100 + logit spread) <= 1e-27 at timm's initial logit scale,
# while allowed pairs stay far above this unless logits span more than ~45 nats.
MASK_THRESHOLD = 1e-20


def _window_shape(window_size: int | tuple[int, int]) -> tuple[int, int]:
    return (window_size, window_size) if isinstance(window_size, int) else tuple(window_size)


def window_distributions(
    attn: torch.Tensor, pair_mask: torch.Tensor | None = None, mask_threshold: float = MASK_THRESHOLD
) -> tuple[torch.Tensor, torch.Tensor]:
    """Window attention with masked pairs zeroed and rows renormalised, plus the pair support.

    ``attn``: ``[B * nW, H, N, N]``. ``pair_mask``: bool ``[B * nW, N, N]``, or ``[nW, N, N]``
    repeated over the images, True = pair may attend; ``None`` keeps the pairs where some head's
    weight exceeds ``mask_threshold``. Returns ``(p [B * nW, H, N, N], support [B * nW, N, N])``.
    """
    if attn.dim() != 4 or attn.shape[-1] != attn.shape[-2]:
        raise ValueError(f"window attention must be [B * num_windows, H, N, N], got shape {tuple(attn.shape)}")
    attn = attn.float()
    if pair_mask is None:
        support = attn.amax(dim=1) > mask_threshold  # [B * nW, N, N]
    else:
        if pair_mask.dtype != torch.bool or pair_mask.dim() != 3 or pair_mask.shape[-2:] != attn.shape[-2:]:
            raise ValueError(
                f"pair_mask must be a bool [B * num_windows, N, N] or [num_windows, N, N] tensor matching "
                f"attention {tuple(attn.shape)}, got {pair_mask.dtype} {tuple(pair_mask.shape)}"
            )
        if attn.shape[0] % pair_mask.shape[0]:
            raise ValueError(f"{pair_mask.shape[0]} mask windows do not tile {attn.shape[0]} attention windows")
        support = pair_mask.to(attn.device).repeat(attn.shape[0] // pair_mask.shape[0], 1, 1)  # [B * nW, N, N]
    if not support.any(dim=-1).all():
        raise ValueError("every query needs at least one allowed key; check pair_mask / mask_threshold")
    kept = attn * support.unsqueeze(1)  # [B * nW, H, N, N]
    p = kept / kept.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
    return p, support


def window_attention_distance(
    attn: torch.Tensor,
    window_size: int | tuple[int, int],
    pixel_stride: float,
    pair_mask: torch.Tensor | None = None,
    mask_threshold: float = MASK_THRESHOLD,
) -> torch.Tensor:
    """Mean attention distance per head in input pixels, inside windows (Fig. 8).

    ``mean_{windows, q} sum_k A[q, k] * pixel_stride * ||pos_q - pos_k||`` with window-local token
    positions and masked pairs removed (see :func:`window_distributions`). ``attn``:
    ``[B * nW, H, N, N]`` with ``N = Wh * Ww``. Returns ``[H]``.
    """
    window = _window_shape(window_size)
    if attn.dim() != 4 or attn.shape[-1] != window[0] * window[1]:
        raise ValueError(f"attention {tuple(attn.shape)} does not hold windows of {window[0]}x{window[1]} tokens")
    p, _ = window_distributions(attn, pair_mask, mask_threshold)
    return mean_distance(p, patch_distances(window, pixel_stride))


def window_attention_entropy(
    attn: torch.Tensor, pair_mask: torch.Tensor | None = None, mask_threshold: float = MASK_THRESHOLD
) -> torch.Tensor:
    """Entropy in nats of each head's in-window attention, masked pairs removed (Fig. 9). ``[H]``.

    ``mean_{windows, q} -sum_k A[q, k] log A[q, k]``; at most ``log N`` (less for queries whose
    shifted window only allows part of the keys).
    """
    p, _ = window_distributions(attn, pair_mask, mask_threshold)
    return mean_entropy(p)


def window_head_kl(
    attn: torch.Tensor,
    pair_mask: torch.Tensor | None = None,
    mask_threshold: float = MASK_THRESHOLD,
    eps: float = 1e-8,
) -> torch.Tensor:
    """``[H, H]`` KL(head i || head j) of in-window attention, averaged over queries (Fig. 10).

    Masked pairs carry zero mass in every head and get no ``eps`` smoothing, so they add nothing
    (see :func:`.distributions.mean_head_kl`).
    """
    p, support = window_distributions(attn, pair_mask, mask_threshold)
    return mean_head_kl(p, eps=eps, support=support)


def image_distributions(
    attn: torch.Tensor,
    window_size: int | tuple[int, int],
    pixel_stride: float,
    num_images: int,
    pair_mask: torch.Tensor | None = None,
    mask_threshold: float = MASK_THRESHOLD,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Window attention regrouped per image, for per-image statistics of :mod:`.distributions`.

    The ``nW`` windows of image ``b`` (``attn`` rows ``b * nW .. b * nW + nW - 1``) become
    ``nW * N`` query rows of example ``b``, each over its window's ``N`` keys, so a mean over an
    example's queries is the mean over its windows and their queries. Returns
    ``(p [B, H, nW * N, N], support [B, nW * N, N], dist [nW * N, N])`` with masked pairs removed as
    in :func:`window_distributions` and window-local distances in pixels.
    """
    window = _window_shape(window_size)
    if attn.dim() != 4 or attn.shape[-1] != window[0] * window[1]:
        raise ValueError(f"attention {tuple(attn.shape)} does not hold windows of {window[0]}x{window[1]} tokens")
    if attn.shape[0] % num_images:
        raise ValueError(f"{attn.shape[0]} attention windows do not split evenly over {num_images} images")
    p, support = window_distributions(attn, pair_mask, mask_threshold)  # [B * nW, H, N, N], [B * nW, N, N]
    windows, heads, tokens = attn.shape[0] // num_images, attn.shape[1], attn.shape[-1]
    p = p.view(num_images, windows, heads, tokens, tokens).transpose(1, 2)  # [B, H, nW, N, N]
    p = p.reshape(num_images, heads, windows * tokens, tokens)
    support = support.reshape(num_images, windows * tokens, tokens)
    dist = patch_distances(window, pixel_stride).repeat(windows, 1)  # [nW * N, N]
    return p, support, dist
