import pytest

from mimstudy.cli import main
from mimstudy.config import ProbeConfig, ConfigError, PretrainConfig
from mimstudy.pretrain import checkpoint_path
from mimstudy.results import save_result
from mimstudy.runner import plan, run_preset, steps_to_run

from .test_results import small_dataset


def test_ci_plan_orders_pretraining_before_probes(tmp_path):
    steps = plan("ci", results_dir=str(tmp_path))
    assert [s.name for s in steps] == ["pretrain/vit_sup", "pretrain/vit_simmim", "evaluate/vit_sup",
                                       "evaluate/vit_simmim", "probes/vit_sup", "probes/vit_simmim"]
    assert isinstance(steps[0].config, PretrainConfig) and steps[0].config.preset == "ci"
    assert steps[4].result == tmp_path / "ci" / "probes" / "vit_sup.nc"


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


def test_current_results_are_skipped_and_stale_ones_rerun(tmp_path):
    steps = plan("ci", results_dir=str(tmp_path / "res"), runs_dir=str(tmp_path / "runs"))
    for step in steps:
        save_result(small_dataset(step.config.run_id), step.config)
    for step in steps[:2]:  # pre-training checkpoints exist
        checkpoint_path(step.config).parent.mkdir(parents=True)
        checkpoint_path(step.config).write_bytes(b"")
    assert steps_to_run(steps) == []
    assert len(steps_to_run(steps, force=True)) == 6
    stale = steps[4]
    save_result(small_dataset("x"), ProbeConfig(**{**stale.config.to_dict(), "num_images": 3}))
    assert [s.name for s in steps_to_run(steps)] == ["probes/vit_sup"]


def test_probe_rerun_needs_missing_checkpoint_retrained(tmp_path):
    steps = plan("ci", results_dir=str(tmp_path / "res"), runs_dir=str(tmp_path / "runs"))
    for step in steps[:4] + steps[5:]:  # probes/vit_sup has no result; no checkpoints at all
        save_result(small_dataset(step.config.run_id), step.config)
    assert [s.name for s in steps_to_run(steps)] == ["pretrain/vit_sup", "probes/vit_sup"]


def test_cli_reports_bad_preset_without_traceback(capsys):
    assert main(["run", "--preset", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_cli_reports_missing_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MIMSTUDY_DATA", str(tmp_path / "empty"))
    assert main(["run", "--preset", "ci", "--results-dir", str(tmp_path), "--runs-dir", str(tmp_path)]) == 2
    assert "MIMSTUDY_DATA" in capsys.readouterr().err


def test_ci_preset_end_to_end_then_skips(ci_results):
    results, runs = ci_results
    lines = []
    assert run_preset("ci", results_dir=results, runs_dir=runs, log=lines.append) == []
    assert sum(line.startswith("[skip]") for line in lines) == 6
    from mimstudy.results import load_runs

    ds = load_runs(f"{results}/ci/probes")
    assert set(ds["objective"].values) == {"supervised", "simmim"}
    assert ds["attention_distance"].dims == ("model", "layer", "head", "image")
    assert (ds["attention_distance"] > 0).all()
    accuracy = load_runs(f"{results}/ci/evaluate")
    assert accuracy["knn_accuracy"].dims == ("model", "weights")
    assert ((accuracy["knn_accuracy"] >= 0) & (accuracy["knn_accuracy"] <= 1)).all()
