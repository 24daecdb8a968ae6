"""Sanity evaluation of a pre-trained backbone: k-NN and linear-probe accuracy on frozen features.

Neither number is a result of the paper; they show that each of our models learned something
(a randomly initialised ViT already reaches a k-NN accuracy well above chance on Fashion-MNIST, so
the book shows both next to the same numbers for an untrained backbone).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mimstudy.models.backbones import is_swin


POOLS = ("head", "patch_mean")


def pooled_features(backbone: nn.Module, x: torch.Tensor, pool: str = "head") -> torch.Tensor:
    """``[B, D]`` features of images ``x``.

    ``"head"``: the pre-logits features the classifier would see (a ViT's CLS token, a Swin's or
    ConvNet's average pool). ``"patch_mean"``: the mean of the final (normed) patch tokens, the
    same for every objective; SimMIM never trains a ViT's CLS token, so its CLS features describe an
    untrained token.
    """
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    feats = backbone.forward_features(x)
    if pool == "head":
        return backbone.forward_head(feats, pre_logits=True)
    if feats.dim() == 3:  # ViT-like [B, N, D]: drop CLS / register tokens
        return feats[:, getattr(backbone, "num_prefix_tokens", 0):].mean(1)
    return feats.mean((1, 2) if is_swin(backbone) else (2, 3))  # Swin NHWC, ConvNets NCHW


@torch.no_grad()
def extract_features(backbone: nn.Module, images: torch.Tensor, batch_size: int = 256,
                     pool: str = "head") -> torch.Tensor:
    """Features ``[N, D]`` (see :func:`pooled_features`) on the CPU.

    Batches of ``images`` move to the backbone's device (a GPU, say) and their features back.
    """
    backbone = backbone.eval()
    device = next(backbone.parameters()).device
    chunks = [pooled_features(backbone, images[i: i + batch_size].to(device), pool).float().cpu()  # [b, D]
              for i in range(0, images.shape[0], batch_size)]
    return torch.cat(chunks)


def knn_accuracy(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor,
                 k: int = 20, temperature: float = 0.07, num_classes: int = 10) -> float:
    """Weighted k-NN accuracy on cosine similarity (Wu et al. 2018, as used by DINO and MoCo v3).

    Each test sample votes with its ``k`` most similar training samples, weighted by
    ``exp(similarity / temperature)``.
    """
    if not 1 <= k <= train.shape[0]:
        raise ValueError(f"k must lie in [1, {train.shape[0]}], got {k}")
    train, test = F.normalize(train, dim=1), F.normalize(test, dim=1)
    correct = 0
    for start in range(0, test.shape[0], 1024):
        sim = test[start: start + 1024] @ train.T  # [b, N]
        top_sim, top_idx = sim.topk(k, dim=1)  # [b, k]
        votes = torch.zeros(sim.shape[0], num_classes).scatter_add_(
            1, train_labels[top_idx], (top_sim / temperature).exp())
        correct += (votes.argmax(dim=1) == test_labels[start: start + 1024]).sum().item()
    return correct / test.shape[0]


def linear_probe_accuracy(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor,
                          test_labels: torch.Tensor, num_classes: int = 10, weight_decay: float = 1e-4,
                          max_iter: int = 200) -> float:
    """Test accuracy of multinomial logistic regression on standardised frozen features.

    Full-batch L-BFGS on the training features (standardised with their own mean and std), with an
    L2 penalty ``weight_decay``; deterministic for given inputs.
    """
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    train, test = (train - mean) / std, (test - mean) / std
    head = nn.Linear(train.shape[1], num_classes)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(head(train), train_labels) + weight_decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return (head(test).argmax(dim=1) == test_labels).float().mean().item()


def feature_accuracies(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor,
                       test_labels: torch.Tensor, k: int = 20) -> dict[str, float]:
    """``{"knn_accuracy", "linear_accuracy"}`` of given features ``[N, D]``."""
    return {
        "knn_accuracy": knn_accuracy(train, train_labels, test, test_labels, k=k),
        "linear_accuracy": linear_probe_accuracy(train, train_labels, test, test_labels),
    }


def sanity_accuracies(backbone: nn.Module, train_images: torch.Tensor, train_labels: torch.Tensor,
                      test_images: torch.Tensor, test_labels: torch.Tensor, k: int = 20,
                      pool: str = "head") -> dict[str, float]:
    """``{"knn_accuracy", "linear_accuracy"}`` of ``backbone``'s frozen features (see :func:`pooled_features`)."""
    return feature_accuracies(extract_features(backbone, train_images, pool=pool), train_labels,
                              extract_features(backbone, test_images, pool=pool), test_labels, k=k)


def raw_pixel_accuracies(train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor,
                         test_labels: torch.Tensor, k: int = 20) -> dict[str, float]:
    """The same scores on raw pixels (each image flattened): the bar a learned representation must clear."""
    return feature_accuracies(train_images.flatten(1).float(), train_labels, test_images.flatten(1).float(),
                              test_labels, k=k)
