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

from mimstudy.models.checkpoints.layouts import LAYOUTS
from mimstudy.models.backbones import ModelConfigError, validate_backbone

OBJECTIVES = ("supervised", "moco", "simmim", "finetune")
DATASETS = ("fashion_mnist", "image_folder")


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

    def differences(self, stored: dict[str, Any], ignore: frozenset[str] | set[str] = frozenset()) -> list[str]:
        """Parameters in which ``stored`` (a run's saved parameters) differs from this config.

        A parameter added to the dataclass after the run was made counts as unchanged while it keeps
        its default (new parameters default to the old behaviour), so adding one does not invalidate
        existing results; a parameter the dataclass no longer has counts as changed.
        """
        current, defaults = self.to_dict(), type(self)().to_dict()
        changed = {k for k in stored if k not in ignore and stored[k] != current.get(k, object())}
        changed |= {k for k in set(current) - set(stored) - set(ignore) if current[k] != defaults[k]}
        return sorted(changed)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _check_device(device: str) -> None:
    """``auto`` (CUDA when available, else the CPU) or a device torch knows: ``cpu``, ``cuda``, ``cuda:<n>``."""
    if device == "auto":
        return
    try:
        torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<n>', got {device!r}") from err


@dataclass
class PretrainConfig(RunConfig):
    """Pre-training of one backbone with one objective (``notebooks/pretrain.ipynb``)."""

    notebook: ClassVar[str] = "pretrain"

    objective: str = "supervised"
    arch: str = "vit_micro_32"
    # fashion_mnist: the study's 32x32 grayscale images in memory; image_folder: RGB images of an
    # ImageNet-style tree data_dir/{train,val}/<class>/<image>, read by DataLoader workers
    dataset: str = "fashion_mnist"
    data_dir: str = ""
    img_size: int = 32  # the backbone's input size (fashion_mnist: 32)
    num_workers: int = 0  # image_folder: DataLoader worker processes per training process
    train_size: int = 2000  # image_folder: at most this many images (a seeded subset when the folder holds more)
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
    drop_path: float = 0.0
    # supervised and finetune: DeiT-style augmentation (random-resized crop, flip, mixup/cutmix)
    augment: bool = False
    crop_scale_min: float = 0.35
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    mixup_prob: float = 1.0
    # simmim
    mask_ratio: float = 0.6
    mask_patch_size: int = 8
    # moco (MoCo v3)
    moco_dim: int = 128
    moco_mlp_dim: int = 512
    moco_temperature: float = 0.2
    moco_momentum: float = 0.99
    # finetune: start from the encoder of pre-training run `init_from`, layer-wise lr decay (1 = none)
    init_from: str = ""
    layer_decay: float = 1.0
    bf16: bool = False  # bf16 autocast (CPU and CUDA)
    device: str = "auto"  # auto: this process's GPU when CUDA is available, else the CPU
    resume: bool = True
    max_steps: int = 0  # stop after this many optimizer steps in all (0: no cap); 1 = a dry run

    def validate(self) -> None:
        super().validate()
        _require(self.objective in OBJECTIVES, f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        _require(self.dataset in DATASETS, f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        _require(self.dataset != "fashion_mnist" or self.img_size == 32,
                 f"dataset 'fashion_mnist' has 32x32 images: img_size must be 32, got {self.img_size}")
        _require(self.dataset != "image_folder" or bool(self.data_dir),
                 "dataset 'image_folder' needs data_dir, a folder holding train/<class>/ and val/<class>/ images")
        _require(self.img_size >= 1 and self.num_workers >= 0 and self.max_steps >= 0,
                 f"need img_size >= 1, num_workers >= 0 and max_steps >= 0, got {self.img_size}, "
                 f"{self.num_workers}, {self.max_steps}")
        try:
            validate_backbone(self.arch, img_size=self.img_size)
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
        _require(0.0 <= self.drop_path < 1.0, f"drop_path must lie in [0, 1), got {self.drop_path}")
        _require(0.0 < self.crop_scale_min <= 1.0, f"crop_scale_min must lie in (0, 1], got {self.crop_scale_min}")
        _require(0.0 <= self.mixup_prob <= 1.0, f"mixup_prob must lie in [0, 1], got {self.mixup_prob}")
        _require(0.0 < self.layer_decay <= 1.0, f"layer_decay must lie in (0, 1] (1 = none), got {self.layer_decay}")
        _require(0.0 < self.moco_momentum < 1.0 and self.moco_temperature > 0,
                 "moco_momentum must lie in (0, 1) and moco_temperature be > 0")
        _require((self.objective == "finetune") == bool(self.init_from),
                 "init_from (the run id of a pre-training run to fine-tune) is required for objective "
                 f"'finetune' and only for it; got objective={self.objective!r}, init_from={self.init_from!r}")
        _require(self.init_from != self.run_id, "a run cannot fine-tune itself (init_from == run_id)")
        _require(self.grad_clip >= 0, f"grad_clip must be >= 0 (0 disables clipping), got {self.grad_clip}")
        self.kept_epochs()
        _check_device(self.device)

    def required_runs(self) -> list[str]:
        return [self.init_from] if self.init_from else []

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


PROBES = ("distance", "entropy", "kl", "cka")


def probe_names(probes: str) -> tuple[str, ...]:
    """``"distance, kl"`` -> ``("distance", "kl")``."""
    return tuple(name.strip() for name in probes.split(",") if name.strip())


def _check_probing(num_images: int, batch_size: int, probes: str) -> None:
    _require(num_images >= 1, f"num_images must be >= 1, got {num_images}")
    _require(batch_size >= 4, f"batch_size must be >= 4 (minibatch CKA needs 4 images), got {batch_size}")
    unknown = sorted(set(probe_names(probes)) - set(PROBES))
    _require(probe_names(probes) and not unknown, f"probes must be a comma-separated subset of {PROBES}, got {probes!r}")


@dataclass
class ProbeConfig(RunConfig):
    """The paper's probes on one pre-trained model (``notebooks/probes.ipynb``): attention distance,
    attention entropy, KL between heads and CKA between layers, over ``num_images`` test images.

    ``run_id`` names the pre-training run whose checkpoint is probed; ``probes`` is a comma-separated
    subset of ``distance,entropy,kl,cka``. With ``arch`` set, no checkpoint is read: the run probes a
    randomly initialised ``arch`` seeded by ``seed`` (objective ``random``), the random-init control
    that every verdict of the book compares its trained models with.
    """

    notebook: ClassVar[str] = "probes"

    num_images: int = 64
    batch_size: int = 64
    probes: str = ",".join(PROBES)
    cka_unbiased: bool = True
    device: str = "auto"  # where the model runs; auto: CUDA when available, else the CPU
    arch: str = ""  # "": probe run_id's pre-trained checkpoint; a backbone name: that backbone at random init

    def probe_names(self) -> tuple[str, ...]:
        return probe_names(self.probes)

    def validate(self) -> None:
        super().validate()
        _check_probing(self.num_images, self.batch_size, self.probes)
        _check_device(self.device)
        if self.arch:
            try:
                validate_backbone(self.arch)
            except ModelConfigError as err:
                raise ConfigError(f"arch (the random-init backbone to probe): {err}") from err

    def required_runs(self) -> list[str]:
        return [] if self.arch else [self.run_id]


@dataclass
class EvaluateConfig(RunConfig):
    """Sanity evaluation of one pre-trained model: k-NN and linear-probe accuracy on frozen features
    (``notebooks/evaluate.ipynb``). ``run_id`` names the pre-training run whose checkpoint is read.
    """

    notebook: ClassVar[str] = "evaluate"

    train_size: int = 1000
    test_size: int = 500
    k: int = 20
    device: str = "auto"  # where features are extracted; auto: CUDA when available, else the CPU

    def validate(self) -> None:
        super().validate()
        _check_device(self.device)
        _require(self.train_size >= 10 and self.test_size >= 1,
                 f"need train_size >= 10 and test_size >= 1, got {self.train_size}, {self.test_size}")
        _require(1 <= self.k <= self.train_size, f"k must lie in [1, train_size], got {self.k}")

    def required_runs(self) -> list[str]:
        return [self.run_id]


RANDOM_WEIGHTS = "random"  # the objective label of a randomly initialised model (no checkpoint)
TIMM_WEIGHTS = "timm"  # checkpoint_path naming timm's own pretrained weights of model_name
CHECKPOINT_LAYOUTS = ("auto", *LAYOUTS)  # see mimstudy.models.checkpoints.layouts


@dataclass
class PaperProbeConfig(RunConfig):
    """The paper's probes on a released ImageNet model at paper scale (``notebooks/paper_probes.ipynb``).

    Weights, by ``checkpoint_path``:

    * ``""``: a randomly initialised ``model_name`` (seeded by ``seed``). Used by CI to exercise the
      pipeline; its numbers describe no trained model, and ``objective`` must be ``"random"`` so the
      result can never be labelled as one of the paper's models.
    * ``"timm"``: timm's own pretrained weights of ``model_name`` (needs network access or a warm hub cache).
    * a file path: a released checkpoint (official DeiT, MoCo v3, SimMIM ViT/SwinV2, or a timm state
      dict), read by :func:`mimstudy.models.checkpoints.load_backbone` with ``layout`` (``"auto"`` detects it).
      ``allow_pickle=True`` unpickles files that keep their ``args``/``config`` (official DeiT and SimMIM
      releases): only for files from a source you trust.

    ``objective`` says which of the paper's models the weights are (``supervised``: DeiT, ``moco``:
    MoCo v3, ``simmim``, ``finetune``: SimMIM fine-tuned); it is the result's ``objective`` coord.
    Images: ``num_images`` from the ImageNet-style folder ``image_dir`` (e.g. ImageNet ``val/``), drawn
    with ``seed``; ``""`` uses the offline sample photos of :func:`mimstudy.data.imagenet.sample_photos`.
    """

    notebook: ClassVar[str] = "paper_probes"

    model_name: str = "vit_base_patch16_224"
    checkpoint_path: str = ""  # "": random init (not a paper model); "timm": timm's weights; else a file
    layout: str = "auto"
    allow_pickle: bool = False
    objective: str = RANDOM_WEIGHTS
    image_dir: str = ""  # "": the offline sample photos (9 distinct photos, repeated with flips)
    img_size: int = 224
    num_images: int = 512
    batch_size: int = 64
    probes: str = ",".join(PROBES)
    cka_unbiased: bool = True
    device: str = "auto"  # auto: CUDA when available, else the CPU

    def probe_names(self) -> tuple[str, ...]:
        return probe_names(self.probes)

    @property
    def random_weights(self) -> bool:
        return not self.checkpoint_path

    def validate(self) -> None:
        super().validate()
        _check_probing(self.num_images, self.batch_size, self.probes)
        objectives = (*OBJECTIVES, RANDOM_WEIGHTS)
        _require(self.objective in objectives, f"objective must be one of {objectives}, got {self.objective!r}")
        _require(self.random_weights == (self.objective == RANDOM_WEIGHTS),
                 f"objective {RANDOM_WEIGHTS!r} goes with checkpoint_path '' (random initialisation) and only "
                 f"with it; got objective={self.objective!r}, checkpoint_path={self.checkpoint_path!r}")
        _require(self.layout in CHECKPOINT_LAYOUTS, f"layout must be one of {CHECKPOINT_LAYOUTS}, got {self.layout!r}")
        _require(self.layout == "auto" or self.checkpoint_path not in ("", TIMM_WEIGHTS),
                 f"layout {self.layout!r} describes a checkpoint file: set checkpoint_path to one (or layout 'auto')")
        _require(self.img_size >= 16, f"img_size must be >= 16, got {self.img_size}")
        try:
            validate_backbone(self.model_name, img_size=self.img_size)
        except ModelConfigError as err:
            raise ConfigError(f"model_name: {err}") from err
        _check_device(self.device)


# Execution order of a preset's sections: pre-training first, then what reads its checkpoints.
CONFIGS: dict[str, type[RunConfig]] = {
    c.notebook: c for c in (PretrainConfig, EvaluateConfig, ProbeConfig, PaperProbeConfig)
}
