"""Pre-training objectives: each wraps a timm backbone and returns ``(loss, metrics)``."""

from .simmim import SimMIM
from .supervised import Supervised

__all__ = ["SimMIM", "Supervised"]
