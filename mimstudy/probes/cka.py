"""Linear CKA between layer representations (the paper's Sec. 3.2, Fig. 6, Appendix A.2).

``CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with linear-kernel Gram matrices
``K = X X^T`` and ``L = Y Y^T`` of ``N`` examples (Kornblith et al. 2019, "Similarity of neural
network representations revisited"). It is invariant to orthogonal transforms and isotropic
scaling of the features, not to general invertible linear maps.

Two HSIC estimators, both computed in float64 from ``[N, N]`` Gram matrices:

* biased (Gretton et al. 2005): ``HSIC_0(K, L) = tr(K H L H) / (N - 1)^2`` with the centring
  matrix ``H = I - 11^T / N``;
* unbiased (Song et al. 2012), with ``K~``, ``L~`` the Grams with zeroed diagonals:
  ``HSIC_1(K, L) = [tr(K~ L~) + 1^T K~ 1 1^T L~ 1 / ((N-1)(N-2)) - 2/(N-2) 1^T K~ L~ 1] / (N(N-3))``.

:class:`MinibatchCKA` averages ``HSIC_1`` over minibatches (Nguyen et al. 2021, "Do wide and deep
networks learn the same things?"), an unbiased estimate of the full-data HSIC whose memory does
not grow with the number of examples.
"""

from __future__ import annotations

import torch


def _gram(features: torch.Tensor) -> torch.Tensor:
    """``[N, ...] -> [N, N]`` linear-kernel Gram in float64, features flattened per example."""
    if features.dim() < 2:
        raise ValueError(f"features must be [N, D] or [N, ...] (N examples), got shape {tuple(features.shape)}")
    flat = features.reshape(features.shape[0], -1).double()  # [N, D]
    return flat @ flat.T


def hsic_matrix(grams: torch.Tensor, unbiased: bool = False) -> torch.Tensor:
    """HSIC between every pair of stacked Gram matrices ``[M, N, N] -> [M, M]`` (module docstring)."""
    n = grams.shape[-1]
    if unbiased:
        if n < 4:
            raise ValueError(f"the unbiased HSIC estimator needs more than 3 examples, got {n}")
        grams = grams * (1 - torch.eye(n, dtype=grams.dtype, device=grams.device))  # K~: [M, N, N]
        flat = grams.reshape(grams.shape[0], -1)  # [M, N*N]
        rows = grams.sum(dim=-1)  # K~ 1: [M, N]
        totals = rows.sum(dim=-1)  # 1^T K~ 1: [M]
        trace = flat @ flat.T  # tr(K~_i K~_j), Grams are symmetric: [M, M]
        return (trace + totals[:, None] * totals[None, :] / ((n - 1) * (n - 2)) - 2 * (rows @ rows.T) / (n - 2)) / (
            n * (n - 3)
        )
    if n < 2:
        raise ValueError(f"HSIC needs at least 2 examples, got {n}")
    centred = grams - grams.mean(dim=-1, keepdim=True)  # K H
    centred = centred - centred.mean(dim=-2, keepdim=True)  # H K H: [M, N, N]
    flat = centred.reshape(centred.shape[0], -1)  # [M, N*N]
    return (flat @ flat.T) / (n - 1) ** 2  # tr(HKH HLH) = tr(K H L H)


def _normalise(hsic: torch.Tensor) -> torch.Tensor:
    """``[M, M]`` HSIC -> CKA ``hsic[i, j] / sqrt(hsic[i, i] hsic[j, j])``."""
    scale = hsic.diagonal().sqrt()  # [M]
    return hsic / (scale[:, None] * scale[None, :])


def cka(x: torch.Tensor, y: torch.Tensor, unbiased: bool = False) -> torch.Tensor:
    """Linear CKA between two representations of the same ``N`` examples (Kornblith et al. 2019).

    ``x``: ``[N, D1]``, ``y``: ``[N, D2]``; more dims (e.g. ``[N, tokens, channels]``) are flattened
    per example. ``unbiased=True`` uses Song et al.'s unbiased HSIC (needs ``N > 3``), as in
    Nguyen et al. 2021. Returns a float64 scalar; ``cka(x, x) == 1``.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must hold the same examples, got {x.shape[0]} and {y.shape[0]} rows")
    grams = torch.stack([_gram(x), _gram(y)])  # [2, N, N]
    return _normalise(hsic_matrix(grams, unbiased))[0, 1]


class MinibatchCKA:
    """Layer-by-layer CKA heatmap from minibatches (Nguyen et al. 2021, Sec. 3.1).

    Each :meth:`update` adds the unbiased ``HSIC_1`` of every layer pair on one minibatch; then
    ``CKA[i, j] = mean HSIC_1(K_i, K_j) / sqrt(mean HSIC_1(K_i, K_i) * mean HSIC_1(K_j, K_j))``
    over minibatches. Memory is ``[n_layers, n_layers]``, whatever the number of minibatches.

    ``unbiased=False`` averages the biased ``HSIC_0`` instead; that estimate depends on the
    minibatch size (each minibatch's Gram is centred on its own mean), which is why Nguyen et al.
    use ``HSIC_1``.
    """

    def __init__(self, unbiased: bool = True) -> None:
        self.unbiased = unbiased
        self.hsic_sum: torch.Tensor | None = None  # [n_layers, n_layers], float64
        self.num_batches = 0
        self.num_examples = 0

    def update(self, features: list[torch.Tensor]) -> None:
        """Accumulate one minibatch: ``features[i]`` is layer ``i``'s ``[B, ...]`` output, ``B > 3``
        (``B > 1`` for the biased estimator)."""
        if not features:
            raise ValueError("update needs a non-empty list of per-layer features")
        sizes = {f.shape[0] for f in features}
        if len(sizes) != 1:
            raise ValueError(f"all layers must see the same minibatch, got batch sizes {sorted(sizes)}")
        if self.hsic_sum is not None and len(features) != self.hsic_sum.shape[0]:
            raise ValueError(f"expected {self.hsic_sum.shape[0]} layers as in earlier updates, got {len(features)}")
        grams = torch.stack([_gram(f) for f in features])  # [n_layers, B, B]
        hsic = hsic_matrix(grams, unbiased=self.unbiased)  # [n_layers, n_layers]
        self.hsic_sum = hsic if self.hsic_sum is None else self.hsic_sum + hsic
        self.num_batches += 1
        self.num_examples += grams.shape[-1]

    def compute(self) -> torch.Tensor:
        """``[n_layers, n_layers]`` float64 CKA of the minibatches seen so far."""
        if self.hsic_sum is None:
            raise ValueError("no minibatches yet: call update(features) first")
        return _normalise(self.hsic_sum / self.num_batches)
