"""The fine-tuning recipe (Appendix E, scaled down): the head's own learning rate, the frozen
protocol, and a learning rate chosen on a validation split, never on the test split."""

import numpy as np
import pytest
import torch

from mimstudy.config import ConfigError, DownstreamConfig
from mimstudy.downstream.backbone import build_backbone
from mimstudy.downstream.classification import ClassifierObjective
from mimstudy.downstream.transfer import choose_lr, reused_lr, transfer_seed, freeze, run_downstream, scale_head_lr, seed_checkpoint
from mimstudy.downstream.tasks import get_task
from mimstudy.results import save_result
from mimstudy.study.runner import plan, rerun_reasons, select_runs
from mimstudy.training.optim import build_optimizer

TINY = dict(run_id="tiny", task="k12_materials", init_from="random", arch="vit_micro_32", train_size=64, test_size=32, epochs=1,
            batch_size=32, warmup_epochs=0.0, layer_decay=0.75, drop_path=0.1, num_examples=0)


@pytest.mark.parametrize("bad, message", [
    (dict(protocol="linear"), "protocol must be one of"),
    (dict(head_lr_scale=0.0), "head_lr_scale"),
    (dict(lr_grid="1e-3,x"), "lr_grid must be comma-separated"),
    (dict(lr_grid="1e-3,1e-3"), "distinct positive"),
    (dict(lr_grid="1e-3,2e-3", val_split="test"), "never|other than"),
    (dict(lr_grid="1e-3,2e-3", val_split=""), "val_split"),
    (dict(lr_grid="1e-3,2e-3", lr_from="cog1_sup"), "not both"),
    (dict(lr_from="tiny"), "another downstream run"),
])
def test_bad_recipes_say_what_to_change(bad, message):
    with pytest.raises(ConfigError, match=message):
        DownstreamConfig(**{**TINY, **bad}).validate()
    assert DownstreamConfig(**TINY, lr_grid="2.5e-4, 5e-4").learning_rates() == [2.5e-4, 5e-4]


def objective_and_optimizer(head_lr_scale, total=10):
    backbone, _ = build_backbone("vit_micro_32", None)
    objective = ClassifierObjective(backbone, 5, 32, (0.0, 1.0))
    optimizer, scheduler = build_optimizer(objective, 1e-3, 0.05, total_steps=total, warmup_steps=2, min_lr=1e-5,
                                           layer_decay=0.75)
    scale_head_lr(optimizer, scheduler, backbone, head_lr_scale)
    return objective, optimizer, scheduler


def head_and_last_block_lr(objective, optimizer):
    def lr_of(param):
        return next(g["lr"] for g in optimizer.param_groups if any(p is param for p in g["params"]))
    return lr_of(objective.head.weight), lr_of(objective.backbone.blocks[-1].mlp.fc1.weight)


def test_the_head_learns_at_its_own_rate_through_the_whole_schedule(one_thread):
    plain, plain_opt, plain_sched = objective_and_optimizer(1.0)
    scaled, opt, sched = objective_and_optimizer(10.0)
    for step in range(10):
        head, block = head_and_last_block_lr(scaled, opt)
        plain_head, plain_block = head_and_last_block_lr(plain, plain_opt)
        assert head == pytest.approx(10 * plain_head) and block == pytest.approx(plain_block)
        for o, s in ((opt, sched), (plain_opt, plain_sched)):
            o.step()
            s.step()
    state = sched.state_dict()  # resuming keeps the scaled rates
    _, opt2, sched2 = objective_and_optimizer(1.0)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(state)
    assert sched2.base_lrs == sched.base_lrs


def test_a_frozen_backbone_stays_the_checkpoint_and_in_eval_mode(one_thread):
    backbone, _ = build_backbone("vit_micro_32", None, drop_path=0.1)
    freeze(backbone)
    objective = ClassifierObjective(backbone, 5, 32, (0.0, 1.0))
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    objective.train()
    assert objective.training and objective.head.training and not backbone.training
    assert not any(m.training for m in backbone.modules())
    optimizer = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], lr=1e-2)
    loss, _ = objective(torch.randn(8, 1, 32, 32), torch.randint(0, 5, (8,)))
    loss.backward()
    optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())
    assert objective.head.weight.grad is not None and all(p.grad is None for p in backbone.parameters())


class SplitSpy:
    """A task whose loader records which splits the recipe asked for."""

    def __init__(self, task):
        self.task, self.asked = task, []

    def __getattr__(self, name):
        return getattr(self.task, name)

    def load(self, config, channels=1):
        self.asked.append(config.test_split)
        return self.task.load(config, channels)


def test_the_rate_is_chosen_on_validation_and_the_test_split_is_not_read(tmp_path, one_thread):
    config = DownstreamConfig(**TINY, runs_dir=str(tmp_path), lr_grid="1e-4,3e-3", max_steps=2)
    task = SplitSpy(get_task(config.task))
    train, _ = get_task(config.task).load(config)
    scores = choose_lr(config, task, train, [], torch.device("cpu"), progress=False)
    assert task.asked == ["val"] and set(scores) == {1e-4, 3e-3}
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert seed_checkpoint(config, 0, 1e-4).is_file() and seed_checkpoint(config, 0, 3e-3).is_file()
    assert choose_lr(DownstreamConfig(**TINY), task, train, [], torch.device("cpu")) == {}


def test_a_run_records_its_choice_and_trains_every_seed_with_it(tmp_path, one_thread):
    config = DownstreamConfig(**TINY, runs_dir=str(tmp_path), lr_grid="1e-4,3e-3", transfer_seeds="0,1", max_steps=2,
                              protocol="frozen", head_lr_scale=10.0)
    ds = run_downstream(config, progress=False)
    scores = dict(zip(ds.lr_candidate.values.tolist(), ds.val_top1.values.tolist()))
    assert float(ds.chosen_lr) == max(scores, key=scores.get) and str(ds.protocol.values) == "frozen"
    chosen = float(ds.chosen_lr)
    assert seed_checkpoint(config, 1, chosen).is_file() and not seed_checkpoint(config, 1).is_file()
    # the first seed's run at the chosen rate is the one scored on validation: scored again on test, not re-trained
    again = run_downstream(config, progress=False)
    np.testing.assert_array_equal(again.top1.values, ds.top1.values)
    plain = run_downstream(DownstreamConfig(**TINY, runs_dir=str(tmp_path), preset="plain", max_steps=2), progress=False)
    assert float(plain.chosen_lr) == DownstreamConfig().lr and "lr_candidate" not in plain.dims


def test_a_reused_rate_is_the_one_its_source_chose(tmp_path, one_thread):
    source = DownstreamConfig(**{**TINY, "run_id": "l1"}, runs_dir=str(tmp_path), results_dir=str(tmp_path / "r"),
                              lr_grid="1e-4,3e-3", max_steps=2)
    reuse = DownstreamConfig(**{**TINY, "run_id": "l2", "task": "k12_digits"}, runs_dir=str(tmp_path),
                             results_dir=str(tmp_path / "r"), lr_from="l1", max_steps=2)
    with pytest.raises(FileNotFoundError, match="run 'l1' first"):
        reused_lr(reuse)
    chosen = run_downstream(source, progress=False)
    save_result(chosen, source)
    assert reused_lr(reuse) == float(chosen.chosen_lr) and reused_lr(source) is None
    ds = run_downstream(reuse, progress=False)
    assert float(ds.chosen_lr) == float(chosen.chosen_lr) and ds.chosen_lr.attrs["chosen_by"] == "run l1"
    assert "lr_candidate" not in ds.dims
    other = DownstreamConfig(**{**TINY, "run_id": "l2", "init_from": "vit_sup", "arch": ""}, runs_dir=str(tmp_path),
                             results_dir=str(tmp_path / "r"), lr_from="l1")
    with pytest.raises(ValueError, match="same pre-training"):
        reused_lr(other)


PRESET = """name: reuse
pretrain:
  defaults: {{dataset: fashion_mnist_photos, arch: vit_micro_32_sincos, train_size: 256, val_size: 64, epochs: 1,
             batch_size: 64}}
  runs: {{vit_sup: {{objective: supervised}}, vit_simmim: {{objective: simmim}}}}
downstream:
  defaults: {{arch: vit_micro_32_sincos, train_size: 64, test_size: 32, epochs: 1, warmup_epochs: 0, batch_size: 32}}
  runs:
{runs}
"""


def write_preset(tmp_path, runs: str, seeds: str = ""):
    path = tmp_path / "reuse.yaml"
    path.write_text(PRESET.format(runs=runs) + seeds)
    return path


def test_presets_list_a_rate_source_first_and_from_the_same_pre_training(tmp_path):
    ok = write_preset(tmp_path, "    cog1_sup: {task: cog_l1, init_from: vit_sup, lr_grid: '1e-4,1e-3'}\n"
                                "    cog2_sup: {task: cog_l2, init_from: vit_sup, lr_from: cog1_sup}\n", "seeds: [0, 1]\n")
    steps = plan(ok, results_dir=str(tmp_path / "r"), runs_dir=str(tmp_path / "runs"))
    reuse = {s.config.run_id: s.config for s in steps}
    assert reuse["cog2_sup-s1"].lr_from == "cog1_sup-s1"  # references follow the seed
    chosen = {s.name for s in select_runs(steps, ["cog2_sup-s0"])}
    assert chosen == {"pretrain/vit_sup-s0", "downstream/cog1_sup-s0", "downstream/cog2_sup-s0"}
    reasons = rerun_reasons(steps, checkpoints=False)
    assert reasons["downstream/cog2_sup-s0"] == "missing"
    late = write_preset(tmp_path, "    cog2_sup: {task: cog_l2, init_from: vit_sup, lr_from: cog1_sup}\n"
                                  "    cog1_sup: {task: cog_l1, init_from: vit_sup, lr_grid: '1e-4,1e-3'}\n")
    with pytest.raises(ConfigError, match="listed before it"):
        plan(late)
    crossed = write_preset(tmp_path, "    cog1_sup: {task: cog_l1, init_from: vit_sup, lr_grid: '1e-4,1e-3'}\n"
                                     "    cog2_mim: {task: cog_l2, init_from: vit_simmim, lr_from: cog1_sup}\n")
    with pytest.raises(ConfigError, match="chosen per pre-training"):
        plan(crossed)
    shadowing = write_preset(tmp_path, "    vit_sup: {task: cog_l1, init_from: vit_sup}\n")
    with pytest.raises(ConfigError, match="has the id of a pre-training run"):
        plan(shadowing)
