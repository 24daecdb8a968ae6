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
MEMORY_DATASET_NAMES = ("fashion_mnist", "fashion_mnist_photos")  # mimstudy.data.MEMORY_DATASETS
DATASETS = (*MEMORY_DATASET_NAMES, "image_folder")


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
        """Runs (run ids) this run reads: pre-training checkpoints, or another run's stored result."""
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
    # fashion_mnist: the study's 32x32 grayscale images in memory; fashion_mnist_photos: the same
    # garments on natural-photo backgrounds (mimstudy.data.photo_composites); image_folder: RGB images
    # of an ImageNet-style tree data_dir/{train,val}/<class>/<image>, read by DataLoader workers
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
        _require(self.dataset == "image_folder" or self.img_size == 32,
                 f"dataset {self.dataset!r} has 32x32 images: img_size must be 32, got {self.img_size}")
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
    dataset: str = "fashion_mnist"  # the random-init control's test images (a trained model: its own dataset)

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
        _require(self.dataset in MEMORY_DATASET_NAMES,
                 f"dataset must be one of {MEMORY_DATASET_NAMES}, got {self.dataset!r}")

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


@dataclass
class TrajectoryConfig(RunConfig):
    """The probes followed through pre-training (``notebooks/trajectory.ipynb``): every epoch snapshot
    that pre-training run ``run_id`` kept (``keep_epochs``), plus a random init of its arch as epoch 0,
    probed on the same ``num_images`` test images; image means per epoch.
    """

    notebook: ClassVar[str] = "trajectory"

    num_images: int = 64
    batch_size: int = 64
    probes: str = ",".join(PROBES)
    device: str = "auto"

    def probe_names(self) -> tuple[str, ...]:
        return probe_names(self.probes)

    def validate(self) -> None:
        super().validate()
        _check_probing(self.num_images, self.batch_size, self.probes)
        _check_device(self.device)

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


# mimstudy.downstream.tasks.TASKS, kept in step by tests: Section 4.2's pose, depth and tracking, 4.1's
# concept-generalization ladder, K12-like set and iNat-lite, Appendix D's segmentation and 4.3's detection
DOWNSTREAM_TASKS = ("pose", "crowdpose", "depth", "tracking", "cog_l1", "cog_l2", "cog_l3", "cog_l4", "cog_l5",
                    "k12_garments", "k12_digits", "k12_materials", "k12_fine", "inat_lite", "segmentation", "detection")


DOWNSTREAM_PROTOCOLS = ("finetune", "frozen")


def _int_list(text: str, name: str) -> list[int]:
    try:
        return [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError as err:
        raise ConfigError(f"{name} must be comma-separated integers such as '0,1,2', got {text!r}") from err


@dataclass
class DownstreamConfig(RunConfig):
    """Transfer to a downstream task (``notebooks/downstream.ipynb``), over the seeds ``transfer_seeds``.

    ``init_from`` names the pre-training run whose backbone starts the fine-tuning, or ``random``
    (then ``arch`` names the architecture). ``seed`` seeds the generated dataset; ``data_dir`` (a
    folder in the task's layout: COCO keypoints or instances, ADE20K, ImageFolder, GOT-10k, NYUv2)
    replaces it; ``stream`` reads its images from disk on demand with ``num_workers`` ``DataLoader``
    workers (the real benchmarks) instead of holding every split in memory (our analogs). ``keep_blocks = k`` keeps the first k blocks (0: all;
    Figure 5); ``block_order`` loads pre-trained blocks into the first positions: ``''`` (as
    trained), ``'3,0,5'`` (those blocks, in that order) or ``'sample:<k>:<s>'`` (k blocks drawn
    without replacement with seed s; §3.2).

    The recipe (Appendix E, scaled down): ``protocol`` ``'finetune'`` trains everything,
    ``'frozen'`` only the head over a frozen backbone (in eval mode: a linear probe for
    classification); the head's learning rate is ``lr * head_lr_scale``; ``layer_decay`` (per
    pre-training objective in the presets: 0.75 MIM, 0.85 supervised). With ``lr_grid``
    (``'2.5e-4,5e-4,1e-3'``) each rate is fine-tuned with the first seed on the training split and
    scored on ``val_split`` by the task's primary metric, and the best trains every seed (``lr``
    is then unused); the test split is never used to choose. ``lr_from`` names another downstream
    run of the preset whose chosen rate this run trains with (Appendix E: the rate searched on CoG
    L1's validation split, per pre-training, reused on L2-L5); it must have run, from the same
    ``init_from``.
    """

    notebook: ClassVar[str] = "downstream"

    task: str = "pose"
    init_from: str = RANDOM_WEIGHTS
    arch: str = ""  # required with init_from 'random'; else checked against the checkpoint
    data_dir: str = ""  # "": the generated benchmark, cached under <runs_dir>/data/; else a folder in the task's layout
    train_split: str = "train"
    test_split: str = "test"
    img_size: int = 32
    train_size: int = 2000
    test_size: int = 500
    epochs: int = 8
    batch_size: int = 64
    lr: float = 5e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    layer_decay: float = 0.75
    warmup_epochs: float = 1.0
    drop_path: float = 0.1
    grad_clip: float = 1.0
    augment: bool = True
    keep_blocks: int = 0
    block_order: str = ""
    transfer_seeds: str = "0"
    num_examples: int = 8
    bf16: bool = False
    device: str = "auto"
    resume: bool = True
    max_steps: int = 0  # stop each fine-tuning after this many steps in all (0: no cap); for dry runs
    protocol: str = "finetune"  # "finetune": all weights; "frozen": the head over a frozen backbone
    head_lr_scale: float = 1.0  # the head's learning rate over lr (Appendix E's recipe: 10)
    lr_grid: str = ""  # "": train with lr; else comma-separated rates chosen among on val_split
    val_split: str = "val"  # the split lr_grid is chosen on (never the test split)
    lr_from: str = ""  # "": lr / lr_grid; else the downstream run id whose chosen rate is reused
    stream: bool = False  # read images from disk on demand (the real benchmarks); False: hold each split in memory
    num_workers: int = 0  # DataLoader workers reading a streamed split

    @property
    def random_weights(self) -> bool:
        return self.init_from == RANDOM_WEIGHTS

    def seeds(self) -> list[int]:
        return _int_list(self.transfer_seeds, "transfer_seeds")

    def learning_rates(self) -> list[float]:
        """The rates of ``lr_grid`` (``[]``: none to choose among)."""
        try:
            rates = [float(part) for part in str(self.lr_grid).split(",") if part.strip()]
        except ValueError as err:
            raise ConfigError(f"lr_grid must be comma-separated rates such as '2.5e-4,5e-4', got {self.lr_grid!r}") from err
        _require(all(r > 0 for r in rates) and len(set(rates)) == len(rates),
                 f"lr_grid must list distinct positive rates, got {self.lr_grid!r}")
        return rates

    def block_order_spec(self) -> list[int] | tuple[int, int]:
        """``block_order`` parsed: the block indices listed (``[]``: as trained), or ``(k, seed)`` for
        ``'sample:<k>:<seed>'`` (:func:`mimstudy.downstream.backbone.block_indices` resolves both)."""
        order = self.block_order.strip()
        if not order.startswith("sample:"):
            indices = _int_list(order, "block_order")
            _require(all(i >= 0 for i in indices), f"block_order lists negative block indices: {indices}")
            return indices
        parts = order.split(":")
        _require(len(parts) == 3, f"block_order 'sample:<k>:<seed>' expected, got {order!r}")
        k, seed = _int_list(parts[1], "block_order k") + _int_list(parts[2], "block_order seed")
        _require(k >= 1, f"block_order 'sample:<k>:<seed>' needs k >= 1, got {k}")
        return k, seed

    def validate(self) -> None:
        super().validate()
        _require(self.task in DOWNSTREAM_TASKS, f"unknown task {self.task!r}; tasks: {list(DOWNSTREAM_TASKS)}")
        _require(bool(self.init_from) and "/" not in self.init_from,
                 f"init_from must be a pre-training run id of the preset or {RANDOM_WEIGHTS!r}, got {self.init_from!r}")
        _require(not self.random_weights or bool(self.arch),
                 f"init_from {RANDOM_WEIGHTS!r} needs arch (e.g. 'vit_mini_32'): which architecture to initialise")
        if self.arch:
            try:
                validate_backbone(self.arch, img_size=self.img_size)
            except ModelConfigError as err:
                raise ConfigError(f"arch: {err}") from err
        _require(self.epochs >= 1 and self.batch_size >= 1 and self.train_size >= self.batch_size and self.test_size >= 1,
                 f"need epochs >= 1, batch_size >= 1, train_size >= batch_size and test_size >= 1, got {self.epochs}, "
                 f"{self.batch_size}, {self.train_size}, {self.test_size}")
        _require(self.lr > 0 and 0 <= self.min_lr <= self.lr, f"need 0 <= min_lr <= lr and lr > 0, got {self.lr}, {self.min_lr}")
        _require(0 <= self.warmup_epochs < self.epochs, f"warmup_epochs must lie in [0, epochs), got {self.warmup_epochs}")
        _require(0.0 < self.layer_decay <= 1.0, f"layer_decay must lie in (0, 1] (1 = none), got {self.layer_decay}")
        _require(0.0 <= self.drop_path < 1.0 and self.grad_clip >= 0, "need drop_path in [0, 1) and grad_clip >= 0")
        _require(self.keep_blocks >= 0, f"keep_blocks must be >= 0 (0: all blocks), got {self.keep_blocks}")
        _require(bool(self.seeds()), f"transfer_seeds must name at least one seed, got {self.transfer_seeds!r}")
        _require(self.num_examples >= 0 and self.max_steps >= 0 and self.num_workers >= 0,
                 "num_examples, max_steps and num_workers must be >= 0")
        self.block_order_spec()  # syntax only; the backbone checks the range
        _require(self.protocol in DOWNSTREAM_PROTOCOLS,
                 f"protocol must be one of {list(DOWNSTREAM_PROTOCOLS)}, got {self.protocol!r}")
        _require(self.head_lr_scale > 0, f"head_lr_scale must be > 0, got {self.head_lr_scale}")
        _require(not (self.lr_from and self.learning_rates()),
                 f"give lr_grid (choose a rate here) or lr_from (reuse run {self.lr_from!r}'s rate), not both")
        _require(self.lr_from != self.run_id and "/" not in self.lr_from,
                 f"lr_from must name another downstream run of the preset, got {self.lr_from!r}")
        if self.learning_rates():
            _require(bool(self.val_split) and self.val_split not in (self.test_split, self.train_split),
                     f"lr_grid is chosen on val_split, which must name a split other than train_split "
                     f"{self.train_split!r} and test_split {self.test_split!r}, got {self.val_split!r}")
        _check_device(self.device)

    def required_runs(self) -> list[str]:
        """The pre-training run read (``init_from``) and the downstream run whose rate is reused (``lr_from``)."""
        return ([] if self.random_weights else [self.init_from]) + ([self.lr_from] if self.lr_from else [])


# Execution order of a preset's sections: pre-training first, then what reads its checkpoints.
CONFIGS: dict[str, type[RunConfig]] = {
    c.notebook: c for c in (PretrainConfig, EvaluateConfig, ProbeConfig, TrajectoryConfig, PaperProbeConfig,
                            DownstreamConfig)
}
