"""RepLKNet (Ding et al. 2022): a ConvNet of large depth-wise kernels, registered in timm's model registry.

Appendix B of the paper asks whether masked image modeling does for a large-kernel ConvNet what
RepLKNet's small-kernel re-parameterisation does. This module is that ConvNet, with the module names
of the official ``replknet.py`` (DingXiaoH/RepLKNet-pytorch), so an official state dict loads as is
(:mod:`mimstudy.models.checkpoints.layouts`, layout ``replknet``), and with timm's uniform API
(``forward_features``, ``forward_head``, ``forward_intermediates``, ``reset_classifier``,
``group_matcher``) so the study's objectives, evaluation and probes run on it.

Structure (official): stem ``3x3 s2 -> DW 3x3 -> 1x1 -> DW 3x3 s2`` (each conv + BN + ReLU); stages of
``(RepLKBlock, ConvFFN)`` pairs; transitions ``1x1 -> DW 3x3 s2`` between stages; BN, average pooling
and a linear classifier. A RepLKBlock is ``BN -> 1x1+BN+ReLU -> DW kxk+BN (+ DW small+BN) -> ReLU ->
1x1+BN`` plus the residual; a ConvFFN ``BN -> 1x1+BN (4x) -> GELU -> 1x1+BN`` plus the residual.

Two options the study adds, both off in the official RepLKNet-31B definition:

* ``stem_stride=2`` leaves out the stem's last DW 3x3 s2 (32-px images: the first stage sees 16x16).
* ``in_proj > 0`` puts a 1x1 convolution from the image to ``in_proj`` channels before the stem, as
  the paper does for SimMIM (Appendix B.1: "before the stem ... a normal 1x1 convolution maps the
  3-dimension space of the image into a high-dimensional space where we randomly mask out some
  patches"). The study backbones all have it, so supervised and SimMIM models share one architecture
  and a SimMIM encoder fine-tunes without surgery.

``small_kernel`` (0 = none) adds the parallel small-kernel branch during training;
:meth:`RepLKNet.reparameterize` merges it and both batch norms into one ``kxk`` kernel with a bias
(``fuse_bn`` of each branch, the small kernel zero-padded to ``kxk`` and added).

Study sizes (32x32 grayscale; headless; FLOPs as in :mod:`mimstudy.models.cost`, after merging) are
matched to the ViTs of :mod:`mimstudy.models.backbones` like the SwinV2 ones; see the table there.
Stage maps are 16, 8, 4 and kernels 17, 15, 7: each at least the map (a kernel centred on the map
reaches all of it) and at most ``2 * map - 1`` (every tap meets the map from some position).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices


FFT_MIN_KERNEL, FFT_MIN_MAP = 13, 16  # on the CPU, FFT wins from here on (benchmarks/large_kernel.py)


def fft_depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=k // 2, groups=C)`` for a depth-wise ``[C, 1, k, k]`` kernel, by FFT.

    Zero padding to ``H + k - 1`` makes the circular convolution a linear one; the kernel is flipped
    because ``conv2d`` is a cross-correlation. ``[B, C, H, W] -> [B, C, H, W]``; equal to the direct
    convolution up to float rounding (~1e-6 relative in float32).
    """
    h, w, k = x.shape[-2], x.shape[-1], weight.shape[-1]
    size = (h + k - 1, w + k - 1)
    spectrum = torch.fft.rfft2(x.float(), s=size) * torch.fft.rfft2(weight.float().flip(-1, -2)[:, 0], s=size)
    out = torch.fft.irfft2(spectrum, s=size)[..., k // 2 : k // 2 + h, k // 2 : k // 2 + w].to(x.dtype)
    return out if bias is None else out + bias.reshape(1, -1, 1, 1).to(x.dtype)


class LargeDepthwiseConv2d(nn.Conv2d):
    """A depth-wise, stride-1, same-padding ``nn.Conv2d`` that computes large kernels on big CPU maps by FFT.

    Same parameters and state dict as ``nn.Conv2d``. ``impl``: ``"auto"`` (FFT on the CPU when the
    kernel is at least :data:`FFT_MIN_KERNEL` and the map at least :data:`FFT_MIN_MAP` on a side, where
    ``benchmarks/large_kernel.py`` measured it several times faster than oneDNN's direct depth-wise
    kernel; the direct kernel elsewhere), ``"direct"`` or ``"fft"``.
    """

    def __init__(self, channels: int, kernel_size: int, bias: bool = False, impl: str = "auto"):
        super().__init__(channels, channels, kernel_size, 1, kernel_size // 2, groups=channels, bias=bias)
        if impl not in ("auto", "direct", "fft"):
            raise ValueError(f"impl must be 'auto', 'direct' or 'fft', got {impl!r}")
        self.impl = impl

    def use_fft(self, x: torch.Tensor) -> bool:
        if self.impl != "auto":
            return self.impl == "fft"
        k = self.kernel_size[0]
        return x.device.type == "cpu" and k >= FFT_MIN_KERNEL and min(x.shape[-2:]) >= FFT_MIN_MAP

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_fft(x):
            return fft_depthwise_conv2d(x, self.weight, self.bias)
        return super().forward(x)


def conv_bn(in_chans: int, out_chans: int, kernel_size: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """``conv`` (no bias, padding ``k // 2``) then ``bn``: the official ``conv_bn``."""
    if groups == in_chans == out_chans and stride == 1 and kernel_size > 5:  # the official get_conv2d's rule
        conv = LargeDepthwiseConv2d(in_chans, kernel_size)
    else:
        conv = nn.Conv2d(in_chans, out_chans, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
    return nn.Sequential(OrderedDict(conv=conv, bn=nn.BatchNorm2d(out_chans)))


def conv_bn_relu(in_chans: int, out_chans: int, kernel_size: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    block = conv_bn(in_chans, out_chans, kernel_size, stride, groups)
    block.add_module("nonlinear", nn.ReLU())
    return block


def fuse_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of one convolution equal to ``bn(conv(x))`` with ``bn``'s running statistics."""
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()  # [C]
    return conv.weight * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


class ReparamLargeKernelConv(nn.Module):
    """A depth-wise ``kxk`` convolution + BN, with an optional parallel ``small x small`` one + BN.

    After :meth:`merge_kernel` it is a single ``kxk`` convolution with bias (``lkb_reparam``), the
    official names throughout.
    """

    def __init__(self, channels: int, kernel_size: int, small_kernel: int = 0, merged: bool = False):
        super().__init__()
        if kernel_size % 2 == 0 or (small_kernel and (small_kernel % 2 == 0 or small_kernel > kernel_size)):
            raise ValueError(f"kernel sizes must be odd and the small kernel ({small_kernel}) at most the large "
                             f"one ({kernel_size})")
        self.kernel_size, self.small_kernel = kernel_size, small_kernel
        if merged:
            self.lkb_reparam = LargeDepthwiseConv2d(channels, kernel_size, bias=True)
        else:
            self.lkb_origin = conv_bn(channels, channels, kernel_size, groups=channels)
            if small_kernel:
                self.small_conv = conv_bn(channels, channels, small_kernel, groups=channels)

    @property
    def merged(self) -> bool:
        return hasattr(self, "lkb_reparam")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return self.lkb_reparam(x)
        out = self.lkb_origin(x)
        if hasattr(self, "small_conv"):
            out = out + self.small_conv(x)
        return out

    @torch.no_grad()
    def equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``[C, 1, k, k]`` kernel and ``[C]`` bias of the one convolution this module computes in eval mode."""
        if self.merged:
            return self.lkb_reparam.weight.clone(), self.lkb_reparam.bias.clone()
        kernel, bias = fuse_bn(self.lkb_origin.conv, self.lkb_origin.bn)
        if hasattr(self, "small_conv"):
            small, small_bias = fuse_bn(self.small_conv.conv, self.small_conv.bn)
            kernel = kernel + F.pad(small, [(self.kernel_size - self.small_kernel) // 2] * 4)
            bias = bias + small_bias
        return kernel, bias

    @torch.no_grad()
    def merge_kernel(self) -> None:
        """Replace the branches by one ``kxk`` convolution with their eval-mode kernel and bias."""
        if self.merged:
            return
        kernel, bias = self.equivalent_kernel_bias()
        conv = self.lkb_origin.conv
        self.lkb_reparam = LargeDepthwiseConv2d(conv.in_channels, self.kernel_size, bias=True).to(kernel.device,
                                                                                                  kernel.dtype)
        self.lkb_reparam.weight.copy_(kernel)
        self.lkb_reparam.bias.copy_(bias)
        del self.lkb_origin
        if hasattr(self, "small_conv"):
            del self.small_conv


class RepLKBlock(nn.Module):
    """``x + pw2(relu(large_kernel(pw1(prelkb_bn(x)))))`` (official names)."""

    def __init__(self, channels: int, kernel_size: int, small_kernel: int, drop_path: float = 0.0,
                 merged: bool = False, dw_ratio: float = 1.0):
        super().__init__()
        dw = int(channels * dw_ratio)
        self.pw1 = conv_bn_relu(channels, dw, 1)
        self.pw2 = conv_bn(dw, channels, 1)
        self.large_kernel = ReparamLargeKernelConv(dw, kernel_size, small_kernel, merged)
        self.lk_nonlinear = nn.ReLU()
        self.prelkb_bn = nn.BatchNorm2d(channels)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pw2(self.lk_nonlinear(self.large_kernel(self.pw1(self.prelkb_bn(x)))))
        return x + self.drop_path(out)


class ConvFFN(nn.Module):
    """``x + pw2(gelu(pw1(preffn_bn(x))))`` with a ``ffn_ratio``-times wider hidden layer (official names)."""

    def __init__(self, channels: int, ffn_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        hidden = int(channels * ffn_ratio)
        self.preffn_bn = nn.BatchNorm2d(channels)
        self.pw1 = conv_bn(channels, hidden, 1)
        self.pw2 = conv_bn(hidden, channels, 1)
        self.nonlinear = nn.GELU()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.pw2(self.nonlinear(self.pw1(self.preffn_bn(x)))))


class RepLKNetStage(nn.Module):
    """``blocks``: RepLKBlock, ConvFFN, RepLKBlock, ConvFFN, ... (two modules per large kernel)."""

    def __init__(self, channels: int, depth: int, kernel_size: int, small_kernel: int, drop_path: list[float],
                 merged: bool = False, dw_ratio: float = 1.0, ffn_ratio: float = 4.0):
        super().__init__()
        blocks = []
        for rate in drop_path[:depth]:
            blocks += [RepLKBlock(channels, kernel_size, small_kernel, rate, merged, dw_ratio),
                       ConvFFN(channels, ffn_ratio, rate)]
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class RepLKNet(nn.Module):
    """RepLKNet with timm's model API (see the module docstring).

    ``layers`` counts RepLK blocks per stage (each followed by a ConvFFN); ``large_kernel_sizes`` one
    odd kernel per stage; ``small_kernel`` 0 for none; ``small_kernel_merged`` builds the merged form
    directly (to load merged weights). ``img_size`` is recorded, not needed: the network takes any size.
    """

    def __init__(self, large_kernel_sizes=(31, 29, 27, 13), layers=(2, 2, 18, 2), channels=(128, 256, 512, 1024),
                 small_kernel: int = 5, dw_ratio: float = 1.0, ffn_ratio: float = 4.0, in_chans: int = 3,
                 num_classes: int = 1000, global_pool: str = "avg", drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, stem_stride: int = 4, in_proj: int = 0,
                 small_kernel_merged: bool = False, img_size: int | None = None):
        super().__init__()
        self.config = dict(large_kernel_sizes=tuple(large_kernel_sizes), layers=tuple(layers), channels=tuple(channels),
                           small_kernel=small_kernel, dw_ratio=dw_ratio, ffn_ratio=ffn_ratio, in_chans=in_chans,
                           num_classes=num_classes, stem_stride=stem_stride, in_proj=in_proj, img_size=img_size)
        if not len(large_kernel_sizes) == len(layers) == len(channels):
            raise ValueError(f"need one kernel size, depth and width per stage, got {large_kernel_sizes}, {layers}, {channels}")
        if stem_stride not in (2, 4):
            raise ValueError(f"stem_stride must be 2 or 4, got {stem_stride}")
        if global_pool not in ("avg", ""):
            raise ValueError(f"global_pool must be 'avg' or '' (none), got {global_pool!r}")
        self.in_chans, self.img_size, self.num_classes, self.global_pool = in_chans, img_size, num_classes, global_pool
        self.kernel_sizes, self.small_kernel, self.depths = tuple(large_kernel_sizes), small_kernel, tuple(layers)
        width = channels[0]
        self.in_proj = nn.Conv2d(in_chans, in_proj, 1) if in_proj else None
        stem_in = in_proj or in_chans
        stem = [conv_bn_relu(stem_in, width, 3, 2), conv_bn_relu(width, width, 3, groups=width),
                conv_bn_relu(width, width, 1)]
        if stem_stride == 4:
            stem.append(conv_bn_relu(width, width, 3, 2, groups=width))
        self.stem = nn.ModuleList(stem)
        total = sum(layers)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]  # as torch.linspace (and on meta)
        self.stages, self.transitions = nn.ModuleList(), nn.ModuleList()
        self.feature_info, stride = [], stem_stride
        self.stage_strides = []
        for i, (k, depth, c) in enumerate(zip(large_kernel_sizes, layers, channels)):
            self.stages.append(RepLKNetStage(c, depth, k, small_kernel, rates[sum(layers[:i]):], small_kernel_merged,
                                             dw_ratio, ffn_ratio))
            self.stage_strides.append(stride)
            self.feature_info.append(dict(num_chs=c, reduction=stride, module=f"stages.{i}"))
            if i < len(layers) - 1:
                self.transitions.append(nn.Sequential(conv_bn_relu(c, channels[i + 1], 1),
                                                      conv_bn_relu(channels[i + 1], channels[i + 1], 3, 2,
                                                                   groups=channels[i + 1])))
                stride *= 2
        self.stride = stride  # input pixels per position of the last feature map
        self.num_features = self.head_hidden_size = channels[-1]
        self.norm = nn.BatchNorm2d(channels[-1])
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(channels[-1], num_classes) if num_classes > 0 else nn.Identity()

    # --- timm API ---------------------------------------------------------------------------------

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """Layer groups for layer-wise lr decay: in-projection and stem first, then each block in order;
        a transition forms its own group after the blocks of the stage it ends."""
        return dict(
            stem=r"^in_proj|^stem",
            blocks=r"^stages\.(\d+)" if coarse else [
                (r"^stages\.(\d+)\.blocks\.(\d+)", None),
                (r"^transitions\.(\d+)", (99999,)),
                (r"^norm", (99999, 99999)),
            ],
        )  # fmt: skip

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return set()

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(f"global_pool must be 'avg' or '' (none), got {global_pool!r}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The optional 1x1 in-projection: ``[B, C, H, W] -> [B, in_proj, H, W]`` (identity without one).

        Activations are made channels-last here, and every convolution after keeps that layout: on the
        CPU oneDNN's depth-wise and 1x1 kernels are faster on it (``benchmarks/large_kernel.py``).
        """
        x = x.contiguous(memory_format=torch.channels_last)
        return x if self.in_proj is None else self.in_proj(x)

    def forward_embedded(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, stages and the final BN on the output of :meth:`embed`: ``-> [B, D, H / stride, W / stride]``."""
        for layer in self.stem:
            x = layer(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < len(self.transitions):
                x = self.transitions[i](x)
        return self.norm(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` -> last feature map ``[B, D, H / stride, W / stride]`` (after the final BN)."""
        return self.forward_embedded(self.embed(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "avg":
            x = x.mean(dim=(2, 3))
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: torch.Tensor, indices=None, norm: bool = False, stop_early: bool = False,
                              output_fmt: str = "NCHW", intermediates_only: bool = False):
        """Stage outputs (``NCHW``; ``indices``: last n stages if int, all if None, else those listed),
        and unless ``intermediates_only`` the final features too; ``norm`` applies the final BN to the
        last stage's output."""
        if output_fmt != "NCHW":
            raise ValueError(f"RepLKNet intermediates are NCHW, got output_fmt={output_fmt!r}")
        take, max_index = feature_take_indices(len(self.stages), indices)
        intermediates = []
        x = self.embed(x)
        for layer in self.stem:
            x = layer(x)
        last = len(self.stages) - 1
        for i, stage in enumerate(self.stages):
            if stop_early and i > max_index:
                break
            x = stage(x)
            if i in take:
                intermediates.append(self.norm(x) if norm and i == last else x)
            if i < len(self.transitions):
                x = self.transitions[i](x)
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    # --- re-parameterisation ------------------------------------------------------------------------

    def large_kernels(self) -> list[tuple[str, ReparamLargeKernelConv, int]]:
        """Every large depth-wise convolution in forward order: ``(module name, module, stride in input px)``."""
        return [(f"stages.{s}.blocks.{j}.large_kernel", block.large_kernel, self.stage_strides[s])
                for s, stage in enumerate(self.stages) for j, block in enumerate(stage.blocks)
                if isinstance(block, RepLKBlock)]

    @torch.no_grad()
    def reparameterize(self) -> "RepLKNet":
        """Merge each large kernel's BN and small-kernel branch into one ``kxk`` convolution, in place.

        The eval-mode function is unchanged (``tests/test_replknet.py``); after the merge the model
        trains as a plain large-kernel network. Returns the model.
        """
        for _, module, _ in self.large_kernels():
            module.merge_kernel()
        return self


# --- registered variants ------------------------------------------------------------------------------

def _cfg(**kwargs) -> dict:
    return {**dict(url="", num_classes=1000, input_size=(3, 224, 224), pool_size=(7, 7), crop_pct=0.875,
                   interpolation="bicubic", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                   first_conv="stem.0.conv", classifier="head"), **kwargs}


STUDY_CFG = dict(num_classes=10, input_size=(1, 32, 32), pool_size=(4, 4), mean=(0.5,), std=(0.5,),
                 first_conv="in_proj")


def _create(variant: str, pretrained: bool, defaults: dict, **kwargs) -> RepLKNet:
    if pretrained:
        raise ValueError(f"{variant}: no pretrained weights are registered; load a file with "
                         "mimstudy.models.checkpoints.load_backbone(name, path)")
    stages = len(kwargs.get("layers", defaults["layers"]))
    return build_model_with_cfg(RepLKNet, variant, pretrained, feature_cfg=dict(out_indices=tuple(range(stages))),
                                **{**defaults, **kwargs})


# Study sizes for 32x32 grayscale images: stem stride 2 (maps 16, 8, 4), kernels 17/15/7, a 1x1
# in-projection to the stem width before the stem, a 3x3 small-kernel branch only where asked.
STUDY_DEFAULTS = dict(large_kernel_sizes=(17, 15, 7), stem_stride=2, small_kernel=0, in_chans=1, num_classes=10)
VARIANTS = {
    "replk_micro_32": dict(layers=(6, 1, 3), channels=(16, 32, 64), in_proj=16),
    "replk_mini_32": dict(layers=(6, 5, 2), channels=(48, 96, 192), in_proj=48),
    "replk_tiny_32": dict(layers=(6, 6, 2), channels=(88, 176, 352), in_proj=88),
}
REPLKNET_31B = dict(large_kernel_sizes=(31, 29, 27, 13), layers=(2, 2, 18, 2), channels=(128, 256, 512, 1024),
                    small_kernel=5, drop_path_rate=0.3)
default_cfgs = generate_default_cfgs({
    **{name: _cfg(**STUDY_CFG) for name in VARIANTS},
    "replknet_31b": _cfg(),
})  # fmt: skip


@register_model
def replk_micro_32(pretrained: bool = False, **kwargs) -> RepLKNet:
    """RepLKNet sized to vit_micro_32 (32x32 grayscale): widths 16-32-64, depths 6-1-3."""
    return _create("replk_micro_32", pretrained, {**STUDY_DEFAULTS, **VARIANTS["replk_micro_32"]}, **kwargs)


@register_model
def replk_mini_32(pretrained: bool = False, **kwargs) -> RepLKNet:
    """RepLKNet sized to vit_mini_32 (32x32 grayscale): widths 48-96-192, depths 6-5-2."""
    return _create("replk_mini_32", pretrained, {**STUDY_DEFAULTS, **VARIANTS["replk_mini_32"]}, **kwargs)


@register_model
def replk_tiny_32(pretrained: bool = False, **kwargs) -> RepLKNet:
    """RepLKNet sized to vit_tiny_32 (32x32 grayscale): widths 88-176-352, depths 6-6-2."""
    return _create("replk_tiny_32", pretrained, {**STUDY_DEFAULTS, **VARIANTS["replk_tiny_32"]}, **kwargs)


@register_model
def replknet_31b(pretrained: bool = False, **kwargs) -> RepLKNet:
    """RepLKNet-31B as in the official ``create_RepLKNet31B`` (kernels 31-29-27-13, small kernel 5,
    widths 128-256-512-1024, depths 2-2-18-2, drop path 0.3); ``small_kernel=0, in_proj=<width>``
    gives the paper's SimMIM variant (no re-parameterisation, a 1x1 convolution before the stem)."""
    return _create("replknet_31b", pretrained, dict(REPLKNET_31B), **kwargs)
