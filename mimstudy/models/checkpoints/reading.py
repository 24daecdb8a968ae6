"""Reading checkpoint files safely: tensors only unless the caller opts in to full unpickling."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the model; the message says why and what to do."""


class UnsafeCheckpointError(CheckpointError):
    """The file pickles Python objects besides tensors (``args``, ``config`` entries, ...)."""


def _unsafe_globals(path: Path, err: Exception) -> list[str]:
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # older or non-zip files: fall back on torch's message
        names = []
    return names or re.findall(r"Unsupported global: GLOBAL ([\w.]+)", str(err))


def read_checkpoint(path: str | Path, allow_pickle: bool = False) -> dict:
    """The object stored in ``path`` (a dict for every checkpoint we know), loaded on the CPU.

    ``.safetensors`` files are read with safetensors. Torch files are loaded with
    ``weights_only=True``; a file that also pickles other objects (the official DeiT and SimMIM
    files keep their ``args``/``config`` there) raises :class:`UnsafeCheckpointError` naming those
    objects. ``allow_pickle=True`` loads it with full unpickling, which can run arbitrary code: use it
    only for files from a source you trust.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint file not found: {str(path)!r} (resolved to {str(path.resolve())!r}). Pass the path "
            "of a downloaded .pth/.pth.tar/.safetensors file, or checkpoint_path=None for timm's own "
            "pretrained weights"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as err:
        names = _unsafe_globals(path, err)
        if not names:
            raise CheckpointError(f"cannot read {str(path)!r} as a torch checkpoint: {err}") from err
        raise UnsafeCheckpointError(
            f"{str(path)!r} holds pickled Python objects besides tensors ({', '.join(names)}), which "
            "torch.load(weights_only=True) refuses to build. Official training checkpoints keep their "
            "args/config this way. If you trust the file's source, pass allow_pickle=True to load it with "
            "full unpickling (this can run arbitrary code); or re-save just the weights once, e.g. "
            "torch.save({'model': torch.load(path, weights_only=False)['model']}, new_path)"
        ) from err
    except ModuleNotFoundError as err:  # full unpickling needs the classes the file refers to
        raise CheckpointError(
            f"{str(path)!r} pickles objects from module {err.name!r}, which is not installed: install it "
            "to unpickle the file, or re-save just the weights from an environment that has it"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(
            f"cannot read {str(path)!r} as a torch checkpoint (truncated or not one): {err}"
        ) from err
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{str(path)!r} holds a {type(obj).__name__}, not a dict of weights: save the model's state_dict()"
        )
    return obj
