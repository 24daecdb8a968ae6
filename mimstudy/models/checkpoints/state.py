"""Training checkpoints: atomic saves, safe loads (``weights_only=True``) with clear errors."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from mimstudy.atomic import atomic_path


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or not what the caller expects."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Save ``state`` (tensors, numbers, strings, lists, dicts only) atomically to ``path``."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)`` on the CPU.

    A missing file, a truncated file or one holding arbitrary pickled objects raises
    :class:`CheckpointError` saying what was found and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: run the pre-training step first (mimstudy run)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain containers, which this study does "
            f"not unpickle ({str(err).splitlines()[0]}). Re-save it with only a state dict."
        ) from err
    except (RuntimeError, EOFError) as err:
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({err}); delete it and re-run") from err


def load_pretrain_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by :func:`mimstudy.training.pretrain.pretrain`: it must hold 'backbone' and
    'config'. A ``.safetensors`` path is a run's committed final weights
    (:func:`mimstudy.models.checkpoints.weights.as_pretrain_checkpoint`), read in the same shape."""
    if Path(path).suffix == ".safetensors":
        from mimstudy.models.checkpoints.weights import as_pretrain_checkpoint

        return as_pretrain_checkpoint(path)
    state = load_checkpoint(path)
    if "backbone" not in state or "config" not in state:
        raise CheckpointError(f"{path} is not a mimstudy pre-training checkpoint (no 'backbone'/'config' entries)")
    return state
