"""Typed run configurations: one dataclass per notebook, fields = the notebook's papermill parameters.

``tests/test_notebooks.py`` checks that each notebook's ``parameters`` cell names exactly the
fields of its dataclass, so a preset file, a papermill ``-p`` flag and the Python API all speak the
same parameters.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from .models import ModelConfigError, validate_backbone

OBJECTIVES = ("supervised", "simmim")


class ConfigError(ValueError):
    """A parameter is invalid; the message names it and says what would be valid."""


@dataclass
class RunConfig:
    """Fields every notebook run has: where it writes and under which names."""

    notebook: ClassVar[str] = ""

    preset: str = "ci"
    run_id: str = "run"
    results_dir: str = "results"
    runs_dir: str = "runs"
    seed: int = 0

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, params: dict[str, Any]):
        """Build from a parameter mapping, rejecting unknown names (typos) with the valid ones."""
        unknown = sorted(set(params) - set(cls.field_names()))
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {unknown} for notebook {cls.notebook!r}; valid: {cls.field_names()}"
            )
        config = cls(**params)
        config.validate()
        return config

    @classmethod
    def from_namespace(cls, namespace: dict[str, Any]):
        """Build from a notebook's globals after papermill injected its parameters."""
        return cls.from_dict({name: namespace[name] for name in cls.field_names() if name in namespace})

    def validate(self) -> None:
        if not self.run_id or "/" in self.run_id:
            raise ConfigError(f"run_id must be a non-empty name without '/', got {self.run_id!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass
class PretrainConfig(RunConfig):
    """Pre-training of one backbone with one objective (``notebooks/pretrain.ipynb``)."""

    notebook: ClassVar[str] = "pretrain"

    objective: str = "supervised"
    arch: str = "vit_micro_32"
    train_size: int = 2000
    val_size: int = 500
    epochs: int = 1
    keep_epochs: str = ""  # e.g. "1,2,4", "all" (or a list): keep runs/<preset>/<run_id>/epoch_<k>.pt (backbone + config)
    batch_size: int = 128  # the global batch: split across the processes under torchrun
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_epochs: float = 0.5
    grad_clip: float = 1.0
    label_smoothing: float = 0.1
    mask_ratio: float = 0.6
    mask_patch_size: int = 8
    bf16: bool = False  # bf16 autocast (CPU and CUDA)
    device: str = "auto"  # auto: this process's GPU when CUDA is available, else the CPU
    resume: bool = True

    def validate(self) -> None:
        super().validate()
        _require(self.objective in OBJECTIVES, f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        try:
            validate_backbone(self.arch)
        except ModelConfigError as err:
            raise ConfigError(f"arch: {err}") from err
        _require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _require(self.train_size >= self.batch_size,
                 f"train_size ({self.train_size}) must be at least one batch ({self.batch_size})")
        _require(self.lr > 0 and 0 <= self.min_lr <= self.lr, f"need 0 <= min_lr <= lr and lr > 0, got lr={self.lr}, min_lr={self.min_lr}")
        _require(0 <= self.warmup_epochs < self.epochs,
                 f"warmup_epochs must lie in [0, epochs={self.epochs}), got {self.warmup_epochs}")
        _require(0.0 < self.mask_ratio < 1.0, f"mask_ratio must lie in (0, 1), got {self.mask_ratio}")
        _require(self.grad_clip >= 0, f"grad_clip must be >= 0 (0 disables clipping), got {self.grad_clip}")
        self.kept_epochs()
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError) as err:
                raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<n>', got {self.device!r}") from err

    def kept_epochs(self) -> list[int]:
        """The epochs (1-based) whose backbone is kept beside the checkpoint, from ``keep_epochs``."""
        keep = self.keep_epochs
        if isinstance(keep, str) and keep.strip() == "all":
            return list(range(1, self.epochs + 1))
        parts = keep.split(",") if isinstance(keep, str) else keep if isinstance(keep, (list, tuple)) else [keep]
        try:  # a preset or papermill may also give an int or a list of ints
            epochs = sorted({int(part) for part in parts if str(part).strip()})
        except (TypeError, ValueError):
            epochs = None
        _require(epochs is not None and all(1 <= k <= self.epochs for k in epochs),
                 f"keep_epochs must be 'all' or comma-separated epochs in [1, {self.epochs}] such as '1,2', "
                 f"got {self.keep_epochs!r}")
        return epochs


@dataclass
class AttentionConfig(RunConfig):
    """Attention probes of one pre-trained model (``notebooks/attention.ipynb``).

    ``run_id`` names the pre-training run whose checkpoint is probed.
    """

    notebook: ClassVar[str] = "attention"

    num_images: int = 64
    batch_size: int = 64

    def validate(self) -> None:
        super().validate()
        _require(self.num_images >= 1, f"num_images must be >= 1, got {self.num_images}")
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")


CONFIGS: dict[str, type[RunConfig]] = {c.notebook: c for c in (PretrainConfig, AttentionConfig)}
