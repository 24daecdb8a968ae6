import pytest

from mimstudy.study.cli import main
from mimstudy.config import ProbeConfig, ConfigError, PretrainConfig, DownstreamConfig
from mimstudy.training.pretrain import checkpoint_path, weights_path
from mimstudy.results import save_result
from mimstudy.study.runner import PRESET_DIR, independent_groups, plan, select_runs, steps_to_run

from .test_results import small_dataset


def test_ci_plan_orders_pretraining_before_probes(tmp_path):
    steps = plan("ci", results_dir=str(tmp_path))
    notebooks = [s.notebook for s in steps]
    assert notebooks == sorted(notebooks, key=["pretrain", "evaluate", "probes", "trajectory", "paper_probes",
                                               "downstream"].index)
    pretrained = [s.config.run_id for s in steps if s.notebook == "pretrain"]
    assert {"vit_sup", "vit_moco", "vit_simmim", "swin_simmim", "swin_simmim_ft"} <= set(pretrained)
    assert pretrained.index("swin_simmim") < pretrained.index("swin_simmim_ft")  # fine-tuning reads it
    for step in steps:
        assert all(run in pretrained for run in step.config.required_runs())
    probes = [s for s in steps if s.notebook == "probes"]
    assert probes[-1].result == tmp_path / "ci" / "probes" / f"{probes[-1].config.run_id}.nc"
    paper = [s for s in steps if s.notebook == "paper_probes"]
    assert [s.config.objective for s in paper] == ["random"] and not paper[0].config.checkpoint_path
    assert paper[-1].result == tmp_path / "ci" / "paper_probes" / f"{paper[-1].config.run_id}.nc"
    downstream = [s for s in steps if s.notebook == "downstream"]
    assert steps[-1] == downstream[-1] and downstream[-1].result.parent == tmp_path / "ci" / "downstream"
    assert all(s.config.preset == "ci" for s in steps)


def test_paper_preset_names_the_official_checkpoints(tmp_path):
    steps = {s.config.objective: s.config for s in plan("paper", results_dir=str(tmp_path)) if s.notebook == "paper_probes"}
    assert set(steps) == {"supervised", "moco", "simmim"}
    files = {objective: config.checkpoint_path.split("/")[-1] for objective, config in steps.items()}
    assert files == {"supervised": "deit_base_patch16_224-b5f2ef4d.pth", "moco": "vit-b-300ep.pth.tar",
                     "simmim": "simmim_pretrain__vit_base__img224__800ep.pth"}
    assert all(c.num_images == 512 and c.img_size == 224 and c.image_dir for c in steps.values())
    assert steps["simmim"].model_name == "beit_base_patch16_224"  # SimMIM's ViT is BEiT-style


def test_unknown_preset_lists_available():
    with pytest.raises(ConfigError, match=r"unknown preset 'nope'.*'ci'"):
        plan("nope")


@pytest.mark.parametrize("body,match", [
    ("pretrain:\n  runs:\n    a: {learning_rate: 1}\n", r"pretrain run 'a'.*unknown parameter"),
    ("pretrain:\n  runs:\n    a: {mask_ratio: 1.5}\n", r"mask_ratio must lie in \(0, 1\)"),
    ("finetune:\n  runs: [a]\n", r"unknown section"),
])
def test_bad_preset_files(tmp_path, body, match):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=match):
        plan(path)


def test_seeds_repeat_every_run(tmp_path):
    path = tmp_path / "seeds.yaml"
    path.write_text("seeds: [0, 3]\npretrain:\n  runs:\n    a: {}\nprobes:\n  runs: [a]\n")
    steps = plan(path)
    assert [s.name for s in steps] == ["pretrain/a-s0", "pretrain/a-s3", "probes/a-s0", "probes/a-s3"]
    assert [s.config.seed for s in steps] == [0, 3, 0, 3]
    assert steps[3].config.required_runs() == ["a-s3"]


def test_runs_may_be_listed_with_parameters(tmp_path):
    path = tmp_path / "control.yaml"
    path.write_text("seeds: [0, 1, 2]\npretrain:\n  runs:\n    a: {}\n"
                    "probes:\n  runs: [a, {a_random: {arch: vit_micro_32}}]\n")
    probes = [s.config for s in plan(path) if s.notebook == "probes"]
    assert [c.run_id for c in probes] == ["a-s0", "a-s1", "a-s2", "a_random-s0", "a_random-s1", "a_random-s2"]
    assert [c.seed for c in probes[3:]] == [0, 1, 2] and all(c.arch == "vit_micro_32" for c in probes[3:])
    assert all(c.required_runs() == [] for c in probes[3:])


def fake_weights(config) -> str:
    """A tiny weights file where pre-training run ``config`` keeps its final weights; its SHA-256."""
    import torch

    from mimstudy.models.checkpoints.weights import save_weights

    return save_weights({"w": torch.ones(2)}, weights_path(config),
                        {"arch": "vit_micro_32", "num_classes": 10, "run_id": config.run_id, "parameters": {}})


def fake_results(steps, skip=(), checkpoints=True):
    for step in steps:
        if step.name not in skip:
            ds = small_dataset(step.config.run_id)
            if isinstance(step.config, PretrainConfig):
                ds.attrs["weights_sha256"] = fake_weights(step.config)
            save_result(ds, step.config)
        if checkpoints and isinstance(step.config, PretrainConfig):
            checkpoint_path(step.config).parent.mkdir(parents=True, exist_ok=True)
            checkpoint_path(step.config).write_bytes(b"")


def test_current_results_are_skipped_and_stale_ones_rerun(tmp_path):
    steps = plan("ci", results_dir=str(tmp_path / "res"), runs_dir=str(tmp_path / "runs"))
    fake_results(steps)
    assert steps_to_run(steps) == []
    assert len(steps_to_run(steps, force=True)) == len(steps)
    stale = next(s for s in steps if s.name == "probes/vit_sup")
    save_result(small_dataset("x"), ProbeConfig(**{**stale.config.to_dict(), "num_images": 3}))
    assert [s.name for s in steps_to_run(steps)] == ["probes/vit_sup"]
    moved = next(s for s in steps if s.name == "probes/vit_moco")
    save_result(small_dataset("x"), ProbeConfig(**{**moved.config.to_dict(), "runs_dir": "/elsewhere"}))
    assert [s.name for s in steps_to_run(steps)] == ["probes/vit_sup"]  # checkpoints' folder is no parameter


def remake_later(step):
    """Stamp ``step``'s stored result as made after every other result (as if it was re-run since)."""
    from mimstudy.results import load_dataset

    ds = load_dataset(step.result)
    ds.attrs["created"] = "2999-01-01T00:00:00+00:00"
    ds.to_netcdf(step.result, engine="h5netcdf")


def test_results_of_a_retrained_model_are_stale(tmp_path):
    steps = plan("ci", results_dir=str(tmp_path / "res"), runs_dir=str(tmp_path / "runs"))
    fake_results(steps)
    by_name = {s.name: s for s in steps}
    remake_later(by_name["pretrain/vit_sup"])
    assert [s.name for s in steps_to_run(steps)] == ["evaluate/vit_sup", "probes/vit_sup", "trajectory/vit_sup"]
    remake_later(by_name["pretrain/swin_simmim"])  # its fine-tune, and what reads that, follow
    assert [s.name for s in steps_to_run(steps)] == [
        "pretrain/swin_simmim_ft", "evaluate/vit_sup", "evaluate/swin_simmim", "evaluate/swin_simmim_ft",
        "probes/vit_sup", "probes/swin_simmim", "probes/swin_simmim_ft", "trajectory/vit_sup"]


def test_a_rerun_model_takes_its_consumers_along(tmp_path):
    steps = plan("ci", results_dir=str(tmp_path / "res"), runs_dir=str(tmp_path / "runs"))
    fake_results(steps, skip={"pretrain/vit_moco"})  # missing: it re-runs, and so must its probes
    assert [s.name for s in steps_to_run(steps)] == ["pretrain/vit_moco", "evaluate/vit_moco", "probes/vit_moco"]


def test_a_rerun_reads_the_committed_weights_without_training_state(tmp_path):
    steps = plan("ci", results_dir=str(tmp_path / "res"), runs_dir=str(tmp_path / "runs"))
    fake_results(steps, skip={"probes/vit_sup", "probes/swin_simmim_ft"}, checkpoints=False)
    assert [s.name for s in steps_to_run(steps)] == ["probes/vit_sup", "probes/swin_simmim_ft"]


def test_a_trajectory_rerun_needs_the_epoch_snapshots_retrained(tmp_path):
    steps = plan("ci", results_dir=str(tmp_path / "res"), runs_dir=str(tmp_path / "runs"))
    fake_results(steps, skip={"trajectory/vit_sup"}, checkpoints=False)
    assert [s.name for s in steps_to_run(steps)] == ["pretrain/vit_sup", "trajectory/vit_sup"]


def test_a_pretraining_is_current_only_with_the_weights_it_recorded(tmp_path):
    from mimstudy.study.runner import rerun_reasons
    from mimstudy.study.staleness import WEIGHTS_NOT_RECORDED

    steps = plan("ci", results_dir=str(tmp_path / "res"), runs_dir=str(tmp_path / "runs"))
    fake_results(steps)
    by_name = {s.name: s for s in steps}
    vit, moco, simmim = by_name["pretrain/vit_sup"], by_name["pretrain/vit_moco"], by_name["pretrain/vit_simmim"]
    weights_path(vit.config).unlink()
    weights_path(moco.config).write_bytes(weights_path(moco.config).read_bytes() + b" ")
    save_result(small_dataset("x"), simmim.config)  # no weights_sha256 recorded
    reasons = rerun_reasons(steps)
    assert reasons["pretrain/vit_sup"] == f"final weights missing: {weights_path(vit.config)}"
    assert reasons["pretrain/vit_moco"] == f"final weights differ from those recorded: {weights_path(moco.config)}"
    assert reasons["pretrain/vit_simmim"] == WEIGHTS_NOT_RECORDED
    assert reasons["probes/vit_sup"] == "pretrain/vit_sup re-runs"  # its consumers follow


def test_selected_runs_bring_the_pretraining_they_read():
    steps = plan("ci")
    chosen = [s.name for s in select_runs(steps, ["swin_simmim_ft"])]
    assert chosen == ["pretrain/swin_simmim", "pretrain/swin_simmim_ft", "evaluate/swin_simmim_ft",
                      "probes/swin_simmim_ft"]  # not swin_simmim's own evaluation or probes
    assert {s.config.run_id for s in select_runs(steps, ["vit_sup"])} == {"vit_sup"}
    assert select_runs(steps, None) == steps
    with pytest.raises(ConfigError, match=r"unknown run id\(s\) \['vit_nope'\].*'vit_sup'"):
        select_runs(steps, ["vit_nope"])


def test_run_patterns_pick_one_seed_of_a_long_preset():
    steps = plan("cpu")
    seed0 = {s.config.run_id for s in select_runs(steps, ["*-s0"])}
    assert seed0 and all(run.endswith("-s0") for run in seed0)
    assert seed0 == {s.config.run_id for s in steps if s.config.seed == 0}
    assert {s.config.run_id for s in select_runs(steps, ["vit_sup-s*"])} == {"vit_sup-s0", "vit_sup-s1", "vit_sup-s2"}
    with pytest.raises(ConfigError, match="unknown run id"):
        select_runs(steps, ["*-s9"])


def test_independent_groups_keep_a_finetune_with_its_source():
    groups = independent_groups(plan("quick"))
    # the preset's order; a downstream run joins the pre-training it starts from, a random-init one stands alone
    assert groups[:3] == [["swin_simmim", "swin_simmim_ft", "pose_swin_simmim"], ["vit_moco", "pose_vit_moco"],
                          ["swin_sup", "pose_swin_sup"]]
    assert ["pose_random_vit"] in groups
    assert ["sweep_r60_p8", "sweep_r60_p8_ft"] in groups
    run_ids = [r for g in groups for r in g]
    assert sorted(run_ids) == sorted({s.config.run_id for s in plan("quick")})  # each run in one group


def test_cli_plan_of_selected_runs(tmp_path, capsys):
    assert main(["plan", "--preset", "ci", "--runs", "vit_sup", "--results-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["pretrain/vit_sup", "evaluate/vit_sup", "probes/vit_sup",
                                                  "trajectory/vit_sup"]
    assert main(["plan", "--preset", "ci", "--runs", "nope"]) == 2
    assert "unknown run id" in capsys.readouterr().err
    assert main(["run", "--preset", "ci", "--jobs", "0"]) == 2
    assert "jobs must be >= 1" in capsys.readouterr().err


def test_cli_reports_bad_preset_without_traceback(capsys):
    assert main(["run", "--preset", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_cli_reports_missing_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MIMSTUDY_DATA", str(tmp_path / "empty"))
    assert main(["run", "--preset", "ci", "--results-dir", str(tmp_path), "--runs-dir", str(tmp_path)]) == 2
    assert "MIMSTUDY_DATA" in capsys.readouterr().err


@pytest.mark.parametrize("preset", sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
def test_every_preset_validates(preset):
    steps = plan(preset)
    assert steps and len({s.name for s in steps}) == len(steps)
    produced = {s.config.run_id for s in steps if isinstance(s.config, (PretrainConfig, DownstreamConfig))}
    assert all(run in produced for s in steps for run in s.config.required_runs())
