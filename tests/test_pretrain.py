import argparse

import numpy as np

import pytest
import torch

from mimstudy.models.checkpoints.state import CheckpointError, load_checkpoint, save_checkpoint
from mimstudy.config import ConfigError, PretrainConfig
from mimstudy.training.engine import TrainingDiverged
from mimstudy.objectives import Supervised
from mimstudy.models.checkpoints.weights import file_sha256
from mimstudy.training.pretrain import checkpoint_path, history_dataset, load_pretrained_backbone, pretrain, weights_path


def config(tmp_path, **overrides) -> PretrainConfig:
    params = dict(preset="t", run_id="r", runs_dir=str(tmp_path / "runs"), results_dir=str(tmp_path / "res"),
                  arch="vit_micro_32", train_size=128, val_size=64, epochs=3, batch_size=32, warmup_epochs=0.5)
    params.update(overrides)
    return PretrainConfig.from_dict(params)


@pytest.mark.parametrize("objective", ["supervised", "simmim"])
def test_resume_reaches_bitwise_the_same_weights(tmp_path, fashion_dir, objective):
    straight = pretrain(config(tmp_path / "a", objective=objective), progress=False)
    interrupted = config(tmp_path / "b", objective=objective)
    stopped = pretrain(interrupted, progress=False, stop_after_epoch=1)
    assert load_checkpoint(checkpoint_path(interrupted))["epoch"] == 1
    assert stopped.weights is None and not weights_path(interrupted).exists()  # not the run's end: no final weights
    resumed = pretrain(interrupted, progress=False)
    for (name, a), b in zip(straight.objective.state_dict().items(), resumed.objective.state_dict().values()):
        assert torch.equal(a, b), name
    # the committed final weights: the same bytes, named with their digest in the run's curves
    assert resumed.weights == weights_path(interrupted) and resumed.weights_sha256 == straight.weights_sha256
    curves = resumed.curves(interrupted)
    assert curves.attrs["weights_sha256"] == resumed.weights_sha256 == file_sha256(resumed.weights)
    backbone, params = load_pretrained_backbone(resumed.weights)
    assert params["run_id"] == "r" and all(torch.equal(v, resumed.objective.backbone.state_dict()[k])
                                           for k, v in backbone.state_dict().items())
    assert [h["train_loss"] for h in straight.history] == [h["train_loss"] for h in resumed.history]


def test_runs_are_deterministic_and_seed_dependent(tmp_path, fashion_dir):
    a = pretrain(config(tmp_path / "a", epochs=1, warmup_epochs=0), progress=False)
    b = pretrain(config(tmp_path / "b", epochs=1, warmup_epochs=0), progress=False)
    c = pretrain(config(tmp_path / "c", epochs=1, warmup_epochs=0, seed=1), progress=False)
    wa, wb, wc = (r.objective.backbone.head.weight for r in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_supervised_training_learns(tmp_path, fashion_dir):
    result = pretrain(config(tmp_path, epochs=4, train_size=512, lr=2e-3), progress=False)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    curves = history_dataset(result.history, config(tmp_path, epochs=4, train_size=512, lr=2e-3))
    assert list(curves["epoch"].values) == [1, 2, 3, 4] and curves["model"].item() == "r"
    assert "val_accuracy" in curves


def test_resume_with_changed_parameters_is_refused(tmp_path, fashion_dir):
    pretrain(config(tmp_path, epochs=2), progress=False, stop_after_epoch=1)
    with pytest.raises(CheckpointError, match=r"different parameters \(\['lr'\]\)"):
        pretrain(config(tmp_path, epochs=2, lr=5e-3), progress=False)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, fashion_dir, monkeypatch):
    cfg = config(tmp_path, epochs=3)
    pretrain(cfg, progress=False, stop_after_epoch=1)
    good = load_checkpoint(checkpoint_path(cfg))

    def nan_loss(self, images, labels):
        return self.backbone(images).sum() * float("nan"), {}

    monkeypatch.setattr(Supervised, "forward", nan_loss)
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        pretrain(cfg, progress=False)
    kept = load_checkpoint(checkpoint_path(cfg))
    assert kept["epoch"] == good["epoch"] == 1
    assert all(torch.equal(kept["model"][k], v) for k, v in good["model"].items())


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "args": argparse.Namespace(lr=0.1)}, path)  # as many public checkpoints do
    with pytest.raises(CheckpointError, match="not unpickle"):
        load_checkpoint(path)


def test_missing_and_corrupt_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="run the pre-training step"):
        load_checkpoint(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(bad)


def test_load_pretrained_backbone(tmp_path, fashion_dir):
    cfg = config(tmp_path, epochs=1, warmup_epochs=0, objective="simmim")
    result = pretrain(cfg, progress=False)
    backbone, params = load_pretrained_backbone(result.checkpoint)
    assert params["objective"] == "simmim" and not backbone.training
    assert torch.equal(backbone.pos_embed, result.objective.backbone.pos_embed)


@pytest.mark.parametrize("objective,arch", [("moco", "vit_micro_32"), ("supervised", "swinv2_micro_32")])
def test_other_objectives_and_backbones_train(tmp_path, fashion_dir, objective, arch):
    result = pretrain(config(tmp_path, objective=objective, arch=arch, epochs=1, warmup_epochs=0, augment=True),
                      progress=False)
    assert all(np.isfinite(v) for v in result.history[0].values())
    backbone, params = load_pretrained_backbone(result.checkpoint)
    assert params["objective"] == objective and params["arch"] == arch


def test_finetune_starts_from_the_simmim_encoder(tmp_path, fashion_dir):
    simmim = pretrain(config(tmp_path, run_id="mim", objective="simmim", epochs=1, warmup_epochs=0), progress=False)
    ft_config = config(tmp_path, run_id="ft", objective="finetune", init_from="mim", epochs=1, warmup_epochs=0,
                       layer_decay=0.75)
    assert ft_config.required_runs() == ["mim"]
    from mimstudy.objectives.factory import build_objective

    start = build_objective(ft_config).backbone.state_dict()
    source = simmim.objective.backbone.state_dict()
    assert all(torch.equal(start[k], source[k]) for k in source if not k.startswith("head"))
    assert pretrain(ft_config, progress=False).history[0]["train_loss"] > 0


def test_finetune_needs_init_from(tmp_path):
    with pytest.raises(ConfigError, match="init_from"):
        config(tmp_path, objective="finetune")
    with pytest.raises(ConfigError, match="init_from"):
        config(tmp_path, objective="simmim", init_from="x")
