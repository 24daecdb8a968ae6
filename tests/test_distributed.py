"""Data parallelism: sharded global batches, global-batch masks, the training CLI, and torchrun.

The torchrun test trains the same tiny SimMIM run on 2 gloo processes (interrupted after epoch 1,
then resumed) and on 1 process, and compares the weights. They differ only by floating-point
rounding: the per-process losses are means over 16 images averaged by DDP instead of one mean
over 32, summed in another order. Over 8 AdamW steps (lr 1e-3) that left at most 4e-6 (measured:
1e-6 to 4e-6 over seeds and both objectives); a sharding mistake is far larger (masks drawn per
process instead of for the global batch: 5e-3). Hence ``atol=2e-5``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from mimstudy import distributed
from mimstudy.models.checkpoints.state import load_checkpoint
from mimstudy.config import ConfigError, DownstreamConfig, PretrainConfig
from mimstudy.objectives.masking import MaskGenerator
from mimstudy.training.pretrain import checkpoint_path, epoch_checkpoint_path, pretrain, run_dir
from mimstudy.results import result_path
from mimstudy.data.sampling import ShardedBatches
from mimstudy.study.train import build_parser, config_from_args

from .conftest import requires_real_data

REPO = Path(__file__).resolve().parents[1]
ATOL = 2e-5


def dataset(n: int = 40) -> TensorDataset:
    return TensorDataset(torch.arange(n).float().view(n, 1), torch.arange(n))


@pytest.mark.parametrize("world", [2, 4])
def test_shards_of_each_global_batch_are_disjoint_and_make_up_the_single_process_batch(world):
    single = [labels for _, labels in ShardedBatches(dataset(), 8, seed=3)]
    shards = [[labels for _, labels in ShardedBatches(dataset(), 8, seed=3, rank=r, world_size=world)]
              for r in range(world)]
    assert len(single) == 5 and all(len(s) == 5 for s in shards)
    for step, batch in enumerate(single):
        parts = [shards[r][step] for r in range(world)]
        assert all(len(p) == 8 // world for p in parts)
        assert torch.equal(torch.cat(parts), batch)
    assert sorted(torch.cat(single).tolist()) == list(range(40))


def test_epoch_order_depends_on_the_seed_only():
    order = ShardedBatches(dataset(), 8, seed=1).order()
    assert torch.equal(order, ShardedBatches(dataset(), 8, seed=1, rank=1, world_size=2).order())
    assert not torch.equal(order, ShardedBatches(dataset(), 8, seed=2).order())
    evaluation = [labels for _, labels in ShardedBatches(dataset(21), 8, shuffle=False, drop_last=False)]
    assert [len(b) for b in evaluation] == [8, 8, 5] and torch.equal(torch.cat(evaluation), torch.arange(21))


def test_global_batch_must_split_evenly():
    with pytest.raises(ValueError, match="divisible by the number of processes"):
        ShardedBatches(dataset(), 10, world_size=4)


def test_pretrain_refuses_a_batch_the_processes_cannot_share(tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    config = PretrainConfig.from_dict(dict(runs_dir=str(tmp_path), train_size=128, batch_size=32))
    with pytest.raises(ConfigError, match="divisible by the\\s+3 processes"):
        pretrain(config, progress=False)


def test_masks_of_a_shard_are_the_rows_of_the_global_batch_masks():
    generator = MaskGenerator(32, 8, 4, 0.6)
    torch.manual_seed(0)
    whole = [distributed.sample_rows(generator, 8) for _ in range(2)]  # two steps on one process
    for rank in range(2):
        torch.manual_seed(0)
        for step in range(2):
            with distributed.global_batch(rank * 4, 8):
                part = distributed.sample_rows(generator, 4)
            assert torch.equal(part, whole[step][rank * 4:(rank + 1) * 4])


def test_every_config_field_is_a_flag_of_the_same_name():
    parser = build_parser()
    dests = {a.dest for a in parser._actions} - {"help", "force", "stop_after_epoch", "no_results"}
    assert dests == set(PretrainConfig.field_names())
    args = vars(parser.parse_args(["--run-id", "x", "--batch-size", "64", "--lr", "3e-4", "--no-resume", "--bf16"]))
    assert args == {"run_id": "x", "batch_size": 64, "lr": 3e-4, "resume": False, "bf16": True,
                    "force": False, "stop_after_epoch": None, "no_results": False}


def test_a_preset_run_gives_the_defaults_and_flags_override_them():
    from mimstudy.study.runner import plan

    preset_value = next(s.config for s in plan("ci") if s.name == "pretrain/vit_simmim").train_size
    config, from_preset = config_from_args({"preset": "ci", "run_id": "vit_simmim", "epochs": 5})
    assert from_preset and config.objective == "simmim" and config.train_size == preset_value and config.epochs == 5
    assert preset_value != PretrainConfig().train_size  # the preset's value, not the default
    config, from_preset = config_from_args({"preset": "mine", "run_id": "x", "objective": "simmim"})
    assert not from_preset and config.objective == "simmim" and config.train_size == PretrainConfig().train_size


def _torchrun(args: list[str], cwd: Path, module: str = "mimstudy.study.train") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", module, *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


def _assert_close(a: dict, b: dict):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=ATOL, msg=name)


@pytest.mark.slow
def test_torchrun_two_processes_reach_the_weights_of_one_and_resume(tmp_path, fashion_dir):
    params = dict(preset="t", run_id="r", runs_dir=str(tmp_path / "runs"), results_dir=str(tmp_path / "res"),
                  objective="simmim", arch="vit_micro_32", train_size=128, val_size=64, epochs=2,
                  batch_size=32, keep_epochs="1")
    single = PretrainConfig.from_dict({**params, "run_id": "single"})
    after_one = pretrain(single, progress=False, stop_after_epoch=1).objective.state_dict()
    after_one = {k: v.clone() for k, v in after_one.items()}
    straight = pretrain(single, progress=False)

    flags = [f"--{k.replace('_', '-')}={v}" for k, v in params.items()]
    first = _torchrun(flags + ["--stop-after-epoch=1"], tmp_path)  # "killed" after epoch 1
    ddp = PretrainConfig.from_dict(params)
    assert first.stdout.count("on 2 process(es)") == 1  # only rank 0 reports
    assert sorted(p.name for p in run_dir(ddp).iterdir()) == ["checkpoint.pt", "epoch_1.pt"]
    state = load_checkpoint(checkpoint_path(ddp))
    assert state["epoch"] == 1 and not result_path(ddp).exists()
    _assert_close(state["model"], after_one)

    _torchrun(flags, tmp_path)  # resumes from epoch 1 on 2 processes
    state = load_checkpoint(checkpoint_path(ddp))
    assert state["epoch"] == 2 and result_path(ddp).is_file()
    assert sorted(p.name for p in run_dir(ddp).iterdir()) == ["checkpoint.pt", "epoch_1.pt"]
    _assert_close(state["model"], straight.objective.state_dict())
    for ours, theirs in zip(state["history"], straight.history):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
        assert ours["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-5)
    kept = load_checkpoint(epoch_checkpoint_path(ddp, 1))
    assert set(kept) == {"config", "epoch", "backbone"}
    _assert_close(kept["backbone"], {k[len("backbone."):]: v for k, v in after_one.items() if k.startswith("backbone.")})


@pytest.mark.slow
@requires_real_data
def test_torchrun_two_processes_fine_tune_as_one(tmp_path):
    """``mimstudy.study.transfer`` under torchrun: each process takes half of every global batch; without
    augmentation, drop path or batch norm (a linear head), the weights and scores are those of one process."""
    from mimstudy.downstream.transfer import run_downstream, seed_checkpoint
    from mimstudy.results import load_dataset

    params = dict(preset="t", run_id="r", runs_dir=str(tmp_path / "runs"), results_dir=str(tmp_path / "res"),
                  task="k12_garments", init_from="random", arch="vit_micro_32", train_size=40, test_size=20, epochs=2,
                  batch_size=8, warmup_epochs=0.5, augment=False, drop_path=0.0, layer_decay=1.0, num_examples=0,
                  device="cpu")
    single = DownstreamConfig.from_dict({**params, "run_id": "single"})
    one = run_downstream(single, progress=False)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in params.items() if not isinstance(v, bool)]
    run = _torchrun(flags + ["--no-augment"], tmp_path,
                    "mimstudy.study.transfer")
    assert run.stdout.count("on 2 process(es)") == 1  # only rank 0 reports
    ddp = DownstreamConfig.from_dict(params)
    _assert_close(load_checkpoint(seed_checkpoint(ddp, 0))["model"], load_checkpoint(seed_checkpoint(single, 0))["model"])
    with load_dataset(result_path(ddp)) as two:
        assert abs(float(two.top1[0]) - float(one.top1[0])) <= 1 / 20  # rounding may flip one of 20 images
        torch.testing.assert_close(torch.from_numpy(two.train_loss.values), torch.from_numpy(one.train_loss.values),
                                   rtol=0, atol=ATOL)
