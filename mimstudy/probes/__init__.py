"""The paper's probes: attention distance, entropy, head KL, CKA, AvgDist."""

from .attention import attention_distance, patch_attention, patch_distances
from .dataset import probe_attention
from .extract import AttentionMaps, disable_fused_attention

__all__ = [
    "AttentionMaps",
    "attention_distance",
    "disable_fused_attention",
    "patch_attention",
    "patch_distances",
    "probe_attention",
]
