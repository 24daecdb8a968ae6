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

    def required_runs(self) -> list[str]:
        """Pre-training runs (run ids) whose checkpoints this run reads."""
        return []

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
    batch_size: int = 128
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_epochs: float = 0.5
    grad_clip: float = 1.0
    label_smoothing: float = 0.1
    mask_ratio: float = 0.6
    mask_patch_size: int = 8
    bf16: bool = False
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


PROBES = ("distance", "entropy", "kl", "cka")


@dataclass
class ProbeConfig(RunConfig):
    """The paper's probes on one pre-trained model (``notebooks/probes.ipynb``): attention distance,
    attention entropy, KL between heads and CKA between layers, over ``num_images`` test images.

    ``run_id`` names the pre-training run whose checkpoint is probed; ``probes`` is a comma-separated
    subset of ``distance,entropy,kl,cka``.
    """

    notebook: ClassVar[str] = "probes"

    num_images: int = 64
    batch_size: int = 64
    probes: str = ",".join(PROBES)
    cka_unbiased: bool = True

    def probe_names(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.probes.split(",") if name.strip())

    def validate(self) -> None:
        super().validate()
        _require(self.num_images >= 1, f"num_images must be >= 1, got {self.num_images}")
        _require(self.batch_size >= 4, f"batch_size must be >= 4 (minibatch CKA needs 4 images), got {self.batch_size}")
        unknown = sorted(set(self.probe_names()) - set(PROBES))
        _require(self.probe_names() and not unknown, f"probes must be a comma-separated subset of {PROBES}, got {self.probes!r}")

    def required_runs(self) -> list[str]:
        return [self.run_id]


@dataclass
class EvaluateConfig(RunConfig):
    """Sanity evaluation of one pre-trained model: k-NN and linear-probe accuracy on frozen features
    (``notebooks/evaluate.ipynb``). ``run_id`` names the pre-training run whose checkpoint is read.
    """

    notebook: ClassVar[str] = "evaluate"

    train_size: int = 1000
    test_size: int = 500
    k: int = 20

    def validate(self) -> None:
        super().validate()
        _require(self.train_size >= 10 and self.test_size >= 1,
                 f"need train_size >= 10 and test_size >= 1, got {self.train_size}, {self.test_size}")
        _require(1 <= self.k <= self.train_size, f"k must lie in [1, train_size], got {self.k}")

    def required_runs(self) -> list[str]:
        return [self.run_id]


# Execution order of a preset's sections: pre-training first, then what reads its checkpoints.
CONFIGS: dict[str, type[RunConfig]] = {c.notebook: c for c in (PretrainConfig, EvaluateConfig, ProbeConfig)}
