"""A pre-training run's final backbone weights as a committed result: one ``safetensors`` file.

Training state (optimizer, schedule, epoch snapshots) stays in ``runs/`` to resume; the weights a
run ends with are a result like its curves: written under ``results/<preset>/weights/<run_id>.safetensors``
(fp32, weights only), their SHA-256 recorded in the run's stored provenance, and read from there by
every later step (evaluation, probes, fine-tuning, downstream tasks) and by any reader::

    from mimstudy.models.checkpoints import load_backbone_weights
    backbone, info = load_backbone_weights("results/cpu/weights/vit_sup-s0.safetensors")

The file's metadata (one ``mimstudy`` entry, JSON) names the backbone (``arch``, ``img_size``,
``num_classes``) and the run (its parameters), so the file alone rebuilds the model. The same
tensors give the same bytes: the digest identifies the weights, whatever machine wrote them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from mimstudy.atomic import atomic_path
from mimstudy.models.checkpoints.state import CheckpointError

SUFFIX = ".safetensors"
FOLDER = "weights"  # results/<preset>/weights/<run_id>.safetensors
METADATA_KEY = "mimstudy"
REQUIRED = ("arch", "num_classes", "run_id", "parameters")


def weights_file(results_dir: str | Path, preset: str, run_id: str) -> Path:
    """Where pre-training run ``run_id`` of ``preset`` keeps its final weights."""
    return Path(results_dir) / preset / FOLDER / f"{run_id}{SUFFIX}"


def file_sha256(path: str | Path) -> str:
    """The SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(state: dict[str, torch.Tensor], path: str | Path, info: dict) -> str:
    """Write ``state`` (a backbone's ``state_dict``) as fp32 safetensors with ``info`` (JSON-able; it
    must name :data:`REQUIRED`) atomically to ``path``; returns the file's SHA-256."""
    missing = [k for k in REQUIRED if k not in info]
    if missing:
        raise ValueError(f"weights info lacks {missing}: it must name {list(REQUIRED)}")
    tensors = {name: (t.detach().float() if t.is_floating_point() else t.detach()).cpu().contiguous()
               for name, t in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(info, sort_keys=True)})
    return file_sha256(path)


def read_weights(path: str | Path, sha256: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state_dict, info)`` of a file written by :func:`save_weights`, checked against ``sha256``
    when given (the digest a run's provenance recorded)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no weights at {path}: run the pre-training run that writes them first "
                              f"(mimstudy run --preset <preset> --runs {path.stem})")
    if sha256 and file_sha256(path) != sha256:
        raise CheckpointError(f"{path} is not the weights its run recorded (SHA-256 differs from {sha256[:12]}...): "
                              "re-make the run, or restore the committed file (git checkout -- <path>)")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err}); re-make its run") from err
    if METADATA_KEY not in metadata:
        raise CheckpointError(f"{path} has no '{METADATA_KEY}' metadata: it was not written by mimstudy's "
                              "save_weights, so which backbone it holds is unknown")
    return state, json.loads(metadata[METADATA_KEY])


def as_pretrain_checkpoint(path: str | Path) -> dict:
    """A weights file in the shape of a pre-training checkpoint: ``config`` (the run's parameters),
    ``backbone`` and ``num_classes``, the entries every reader of a checkpoint's backbone uses."""
    state, info = read_weights(path)
    return {"config": info["parameters"], "backbone": state, "num_classes": int(info["num_classes"])}


def load_backbone_weights(path: str | Path, sha256: str | None = None, **overrides):
    """The backbone stored in ``path`` (built by :func:`mimstudy.models.backbones.create_backbone` from
    the file's own ``arch``, ``num_classes`` and ``img_size``), in eval mode, and the file's info.
    ``overrides``: further arguments for ``create_backbone`` (``drop_path_rate=0.1``)."""
    from mimstudy.models.backbones import create_backbone

    state, info = read_weights(path, sha256)
    backbone = create_backbone(info["arch"], num_classes=int(info["num_classes"]), img_size=info.get("img_size"),
                               **overrides)
    backbone.load_state_dict(state)
    return backbone.eval(), info
