"""Backbones kept at chosen epochs (``keep_epochs``), through the training CLI on one process."""

import pytest
import torch

from mimstudy.models.checkpoints.state import load_checkpoint
from mimstudy.config import ConfigError, PretrainConfig
from mimstudy.training.pretrain import checkpoint_path, epoch_checkpoint_path, load_pretrained_backbone
from mimstudy.results import load_dataset, result_path
from mimstudy.study.train import main


@pytest.mark.parametrize("keep,epochs,expected", [
    ("", 3, []), ("1,3", 3, [1, 3]), (" 3, 1,1", 3, [1, 3]), ("all", 2, [1, 2]), (2, 3, [2]), ([1, 2], 2, [1, 2]),
])
def test_keep_epochs_forms(keep, epochs, expected):
    assert PretrainConfig(keep_epochs=keep, epochs=epochs).kept_epochs() == expected


@pytest.mark.parametrize("keep", ["0", "4", "one", "1;2"])
def test_bad_keep_epochs(keep):
    with pytest.raises(ConfigError, match="keep_epochs"):
        PretrainConfig.from_dict({"keep_epochs": keep, "epochs": 3, "warmup_epochs": 0})


def test_bad_device():
    with pytest.raises(ConfigError, match="device"):
        PretrainConfig.from_dict({"device": "gpu0"})


def test_cli_keeps_backbones_of_chosen_epochs(tmp_path, fashion_dir, capsys):
    args = ["--preset", "t", "--run-id", "k", "--runs-dir", str(tmp_path / "runs"), "--results-dir",
            str(tmp_path / "res"), "--train-size", "64", "--val-size", "32", "--batch-size", "32",
            "--epochs", "3", "--keep-epochs", "1,3", "--objective", "simmim", "--device", "cpu"]
    assert main(args) == 0
    assert "on 1 process(es), cpu" in capsys.readouterr().out
    config = PretrainConfig.from_dict(dict(preset="t", run_id="k", runs_dir=str(tmp_path / "runs"),
                                           results_dir=str(tmp_path / "res"), train_size=64, val_size=32,
                                           batch_size=32, epochs=3, keep_epochs="1,3", objective="simmim",
                                           device="cpu"))
    assert not epoch_checkpoint_path(config, 2).exists()
    first, last = (load_checkpoint(epoch_checkpoint_path(config, k)) for k in (1, 3))
    assert set(first) == {"config", "epoch", "backbone"} and (first["epoch"], last["epoch"]) == (1, 3)
    final = load_checkpoint(checkpoint_path(config))["backbone"]
    assert all(torch.equal(last["backbone"][k], v) for k, v in final.items())
    assert not all(torch.equal(first["backbone"][k], v) for k, v in final.items())
    backbone, params = load_pretrained_backbone(epoch_checkpoint_path(config, 1))
    assert params["keep_epochs"] == "1,3" and not backbone.training
    assert list(load_dataset(result_path(config))["epoch"].values) == [1, 2, 3]
