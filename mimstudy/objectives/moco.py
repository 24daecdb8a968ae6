"""MoCo v3 (Chen, Xie & He 2021) for ViTs, as facebookresearch/moco-v3 ``moco/builder.py``.

Two augmented views per image; a base encoder (backbone -> 3-layer projector -> 2-layer predictor)
gives queries, a momentum encoder (an exponential moving average of backbone and projector, no
predictor) gives keys, and the loss is the symmetric InfoNCE ``ctr(q1, k2) + ctr(q2, k1)`` over the
batch, each term scaled by ``2 T`` as in the official code. The momentum rises from
``base_momentum`` to 1 along a half cosine over training (:func:`momentum_at`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mimstudy.data.augment import MoCoViews


@dataclass(frozen=True)
class MoCoConfig:
    """MoCo v3's hyper-parameters, scaled down for 32x32 inputs and widths of 64-192.

    The paper's ViT settings are ``dim=256, mlp_dim=4096, temperature=0.2, base_momentum=0.99``.
    ``freeze_patch_embed`` keeps the patch projection at its random initialisation (MoCo v3's
    "random patch projection", its fix for training instability in ViTs).
    """

    dim: int = 128
    mlp_dim: int = 512
    temperature: float = 0.2
    base_momentum: float = 0.99
    freeze_patch_embed: bool = True

    def validate(self) -> None:
        if self.dim <= 0 or self.mlp_dim <= 0:
            raise ValueError(f"dim and mlp_dim must be positive, got {self.dim} and {self.mlp_dim}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not 0.0 <= self.base_momentum <= 1.0:
            raise ValueError(f"base_momentum must lie in [0, 1], got {self.base_momentum}")


def build_mlp(num_layers: int, input_dim: int, mlp_dim: int, output_dim: int) -> nn.Sequential:
    """MoCo v3's MLP: bias-free linears with BN + ReLU between them and an affine-free BN at the end."""
    layers: list[nn.Module] = []
    for i in range(num_layers):
        dim_in = input_dim if i == 0 else mlp_dim
        dim_out = output_dim if i == num_layers - 1 else mlp_dim
        layers.append(nn.Linear(dim_in, dim_out, bias=False))
        if i < num_layers - 1:
            layers += [nn.BatchNorm1d(dim_out), nn.ReLU(inplace=True)]
        else:
            layers.append(nn.BatchNorm1d(dim_out, affine=False))
    return nn.Sequential(*layers)


def momentum_at(progress: float, base_momentum: float) -> float:
    """Momentum at ``progress`` in [0, 1] of training: ``base_momentum`` at 0, rising to 1 along a half cosine."""
    return 1.0 - 0.5 * (1.0 + math.cos(math.pi * progress)) * (1.0 - base_momentum)


def contrastive_loss(q: torch.Tensor, k: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE of queries ``[B, D]`` against keys ``[B, D]`` (positive: same row), times ``2 T``.

    Returns the loss and the top-1 accuracy of picking the positive key.
    """
    with torch.autocast(q.device.type, enabled=False):  # logits / T amplify bf16 rounding
        q, k = F.normalize(q.float(), dim=1), F.normalize(k.float(), dim=1)
        logits = q @ k.T / temperature  # [B, B]
        labels = torch.arange(q.shape[0], device=q.device)
        loss = F.cross_entropy(logits, labels) * (2 * temperature)
    return loss, (logits.argmax(dim=1) == labels).float().mean()


def encode(backbone: nn.Module, projector: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Images ``[B, C, H, W]`` -> projections ``[B, dim]`` through the backbone's pooled (CLS) features."""
    features = backbone.forward_head(backbone.forward_features(x), pre_logits=True)  # [B, D]
    return projector(features)


class MomentumEncoder(nn.Module):
    """Backbone (classifier removed) and projector whose parameters follow the base encoder's by EMA."""

    def __init__(self, backbone: nn.Module, projector: nn.Module):
        super().__init__()
        self.backbone = copy.deepcopy(backbone)
        self.backbone.reset_classifier(0)  # the momentum encoder only needs pooled features
        self.projector = copy.deepcopy(projector)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return encode(self.backbone, self.projector, x)


class MoCoV3(nn.Module):
    """MoCo v3 around a timm backbone, which stays an unmodified timm model with its classifier.

    The official code replaces the ViT's ``head`` by the projector; here the projector is a separate
    module fed with ``backbone.forward_head(..., pre_logits=True)`` (the CLS token after the final
    norm), so ``objective.backbone`` keeps its (unused, untrained) classifier and loads like any
    other study backbone. The momentum encoder is a copy of backbone and projector.

    The momentum follows the training progress, which the training loop reports through
    :meth:`on_step` (or :meth:`set_progress`) before each forward. In training mode, ``forward``
    updates the momentum encoder, then computes keys; in eval mode it only computes the loss.
    """

    def __init__(self, backbone: nn.Module, views: MoCoViews | None = None, config: MoCoConfig | None = None):
        super().__init__()
        config = config or MoCoConfig()
        config.validate()
        for method in ("forward_features", "forward_head", "reset_classifier"):
            if not hasattr(backbone, method):
                raise TypeError(f"MoCoV3 needs a timm backbone answering {method}(), got {type(backbone).__name__}")
        self.config = config
        self.backbone = backbone
        self.views = views if views is not None else MoCoViews()
        if config.freeze_patch_embed:
            if not hasattr(backbone, "patch_embed"):
                raise TypeError(f"freeze_patch_embed keeps a ViT/Swin patch projection at its random init, but "
                                f"{type(backbone).__name__} has no patch_embed: set freeze_patch_embed=False")
            backbone.patch_embed.requires_grad_(False)
        width = getattr(backbone, "head_hidden_size", backbone.num_features)  # size of pre_logits features
        self.projector = build_mlp(3, width, config.mlp_dim, config.dim)
        self.predictor = build_mlp(2, config.dim, config.mlp_dim, config.dim)
        self.momentum_encoder = MomentumEncoder(backbone, self.projector)
        self.progress = 0.0

    # --- schedule -------------------------------------------------------------------------------

    def set_progress(self, fraction: float) -> None:
        """Tell the objective how far training is (0: first step, 1: end); sets the momentum."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"training progress must lie in [0, 1], got {fraction}")
        self.progress = float(fraction)

    def on_step(self, step: int, total_steps: int) -> None:
        """Engine hook, called before the forward of optimizer step ``step`` (from 0) of ``total_steps``."""
        self.set_progress(min(step / max(total_steps, 1), 1.0))

    @property
    def momentum(self) -> float:
        return momentum_at(self.progress, self.config.base_momentum)

    def _momentum_pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(momentum, base) parameters, matched by name (the base backbone's classifier has no partner)."""
        base = dict(self.backbone.named_parameters(prefix="backbone"))
        base.update(self.projector.named_parameters(prefix="projector"))
        pairs = [(p, base[name]) for name, p in self.momentum_encoder.named_parameters()]
        return [m for m, _ in pairs], [b for _, b in pairs]

    @torch.no_grad()
    def update_momentum_encoder(self, momentum: float) -> None:
        """``m_param <- momentum * m_param + (1 - momentum) * base_param`` for every parameter (not buffers)."""
        momentum_params, base_params = self._momentum_pairs()
        torch._foreach_lerp_(momentum_params, base_params, 1.0 - momentum)

    # --- forward stages -------------------------------------------------------------------------

    def forward_views(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``[B, C, H, W]`` -> two augmented views, each ``[B, C, H, W]``."""
        return self.views(images)

    def forward_query(self, x: torch.Tensor) -> torch.Tensor:
        """One view ``[B, C, H, W]`` -> queries ``[B, dim]`` (backbone, projector, predictor)."""
        return self.predictor(encode(self.backbone, self.projector, x))

    @torch.no_grad()
    def forward_key(self, x: torch.Tensor) -> torch.Tensor:
        """One view ``[B, C, H, W]`` -> keys ``[B, dim]`` from the momentum encoder, without gradient."""
        return self.momentum_encoder(x)

    def forward_loss(self, q1: torch.Tensor, q2: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor):
        """Symmetric loss ``ctr(q1, k2) + ctr(q2, k1)`` and the mean top-1 of both directions."""
        loss1, top1_1 = contrastive_loss(q1, k2, self.config.temperature)
        loss2, top1_2 = contrastive_loss(q2, k1, self.config.temperature)
        return loss1 + loss2, (top1_1 + top1_2) / 2

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        """Returns ``(loss, metrics)``; labels are ignored."""
        x1, x2 = self.forward_views(images)
        # Views go through the encoders separately, as in the official code: the MLPs' batch norms
        # then normalise over one view at a time.
        q1, q2 = self.forward_query(x1), self.forward_query(x2)  # [B, dim] each
        if self.training:
            self.update_momentum_encoder(self.momentum)
        k1, k2 = self.forward_key(x1), self.forward_key(x2)  # [B, dim] each
        loss, top1 = self.forward_loss(q1, q2, k1, k2)
        metrics = {"loss": loss.detach(), "contrastive_top1": top1.detach(),
                   "momentum": torch.tensor(self.momentum)}
        return loss, metrics
