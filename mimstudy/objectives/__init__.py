"""Pre-training objectives: each wraps a timm backbone and returns ``(loss, metrics)``."""

from .moco import MoCoConfig, MoCoV3
from .simmim import SimMIM
from .supervised import Supervised

__all__ = ["MoCoConfig", "MoCoV3", "SimMIM", "Supervised"]
