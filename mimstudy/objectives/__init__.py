"""Pre-training objectives: each wraps a timm backbone and returns ``(loss, metrics)``."""

from mimstudy.objectives.moco import MoCoConfig, MoCoV3
from mimstudy.objectives.simmim import SimMIM
from mimstudy.objectives.supervised import Supervised

__all__ = ["MoCoConfig", "MoCoV3", "SimMIM", "Supervised"]
