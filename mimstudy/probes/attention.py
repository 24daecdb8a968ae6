"""ViT attention probes: where each head looks (distance), how it spreads (entropy), how heads differ.

The statistics themselves are in :mod:`.distributions`; here they run on patch-to-patch attention.
"""

from __future__ import annotations

import torch

from mimstudy.probes.distributions import mean_distance, mean_entropy, mean_head_kl


def _check_attention(attn: torch.Tensor) -> None:
    if attn.dim() != 4 or attn.shape[-1] != attn.shape[-2]:
        raise ValueError(f"attention maps must be [B, H, N, N], got shape {tuple(attn.shape)}")


def patch_attention(attn: torch.Tensor, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Patch-to-patch attention: drop prefix (CLS/register) queries and keys, renormalise rows.

    ``[B, H, N, N] -> [B, H, L, L]`` with ``L = N - num_prefix_tokens``. Each query's remaining
    weights are divided by their sum, so every row is again a distribution over patches: the
    probes then describe how attention is spread *among image patches*, independent of how much
    mass a query put on the CLS token.
    """
    _check_attention(attn)
    if not 0 <= num_prefix_tokens < attn.shape[-1]:
        raise ValueError(f"num_prefix_tokens={num_prefix_tokens} leaves no patch tokens in {tuple(attn.shape)}")
    patches = attn[:, :, num_prefix_tokens:, num_prefix_tokens:].float()
    return patches / patches.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)


def patch_distances(grid: tuple[int, int], patch_size: float = 1.0) -> torch.Tensor:
    """``[L, L]`` Euclidean distances between patch centres of a row-major ``grid``, in pixels."""
    rows, cols = grid
    yy, xx = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    centres = torch.stack([yy.flatten(), xx.flatten()], dim=1).float() * patch_size  # [L, 2]
    return torch.cdist(centres, centres)


def attention_distance(
    attn: torch.Tensor, grid: tuple[int, int], patch_size: float, num_prefix_tokens: int = 1
) -> torch.Tensor:
    """Mean attention distance of each head in pixels (Dosovitskiy et al. 2021; the paper's Fig. 1).

    For a query patch, the attention-weighted sum of patch-centre to patch-centre Euclidean
    distances (grid steps times ``patch_size`` pixels); averaged over all query patches and images.
    Prefix tokens are removed and rows renormalised first (see :func:`patch_attention`).

    ``attn``: ``[B, H, N, N]`` softmax attention with ``N = num_prefix_tokens + rows * cols``.
    Returns ``[H]``.
    """
    patches = patch_attention(attn, num_prefix_tokens)  # [B, H, L, L]
    if patches.shape[-1] != grid[0] * grid[1]:
        raise ValueError(
            f"attention over {patches.shape[-1]} patch tokens does not match grid {grid} "
            f"(after dropping {num_prefix_tokens} prefix tokens)"
        )
    return mean_distance(patches, patch_distances(grid, patch_size))


def attention_entropy(attn: torch.Tensor, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Entropy of each head's attention distribution in nats (the paper's Sec. 3.1.2, Fig. 3).

    ``entropy[h] = mean_{b, q} ( -sum_k A[b, h, q, k] log A[b, h, q, k] )`` over patch queries ``q``
    and patch keys ``k`` of the renormalised patch attention ``A`` (:func:`patch_attention`), with
    ``0 log 0 = 0``. One-hot rows give 0, uniform rows over ``L`` patches give ``log L``: small
    values mean focused heads, large values broad ones.

    ``attn``: ``[B, H, N, N]`` softmax attention. Returns ``[H]``.
    """
    return mean_entropy(patch_attention(attn, num_prefix_tokens))


def head_kl(attn: torch.Tensor, num_prefix_tokens: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """KL divergence between the attention distributions of every pair of heads (Sec. 3.1.3, Fig. 4).

    ``kl[i, j] = mean_{b, q} KL(A[b, i, q] || A[b, j, q])`` in nats, for the renormalised patch
    attention ``A`` (:func:`patch_attention`): how differently heads ``i`` and ``j`` spread the same
    query over the patches. Rows are smoothed with ``eps`` and renormalised so that zero weights keep
    the logs finite (see :func:`.distributions.mean_head_kl`). The diagonal is 0, the matrix is
    non-negative and in general not symmetric. Reduce it with :func:`head_kl_per_head` (small dots
    of Fig. 4) and :func:`layer_kl` (large dots).

    ``attn``: ``[B, H, N, N]`` softmax attention. Returns ``[H, H]`` (float64).
    """
    return mean_head_kl(patch_attention(attn, num_prefix_tokens), eps=eps)
