"""The paper's probes: attention distance, entropy, head KL, CKA, AvgDist, and large-kernel ConvNet kernels."""

from mimstudy.probes.attention import attention_distance, attention_entropy, head_kl, patch_attention, patch_distances
from mimstudy.probes.avgdist import avg_dist, expected_avg_dist
from mimstudy.probes.cka import MinibatchCKA, cka
from mimstudy.probes.dataset import ModelProbe, probe_attention, probe_convnet, probe_model
from mimstudy.probes.distributions import head_kl_per_head, layer_kl
from mimstudy.probes.kernels import kernel_distributions, kernel_statistics, probe_kernels
from mimstudy.probes.extract import (
    AttentionMaps,
    SwinAttentionMaps,
    WindowAttentionMap,
    disable_fused_attention,
    swin_attention_maps,
)
from mimstudy.probes.windowed import window_attention_distance, window_attention_entropy, window_head_kl

__all__ = [
    "AttentionMaps",
    "MinibatchCKA",
    "ModelProbe",
    "SwinAttentionMaps",
    "WindowAttentionMap",
    "attention_distance",
    "attention_entropy",
    "avg_dist",
    "cka",
    "disable_fused_attention",
    "expected_avg_dist",
    "head_kl",
    "head_kl_per_head",
    "kernel_distributions",
    "kernel_statistics",
    "layer_kl",
    "patch_attention",
    "patch_distances",
    "probe_attention",
    "probe_convnet",
    "probe_kernels",
    "probe_model",
    "swin_attention_maps",
    "window_attention_distance",
    "window_attention_entropy",
    "window_head_kl",
]
