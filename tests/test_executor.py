"""--executor slurm: one submitit job per independent group of runs, tried with submitit's local executor."""

import sys

import pytest
import yaml

from mimstudy.config import ConfigError
from mimstudy.study.cli import main
from mimstudy.study.executor import JobResources, group_commands, make_executor
from mimstudy.study.runner import PRESET_DIR, plan, rerun_reasons, run_preset

from .conftest import requires_real_data


def test_resources_come_from_the_preset_block_then_the_flags(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("executor: {partition: gpu, gpus: 4, time_min: 90}\npretrain:\n  runs:\n    a: {}\n")
    assert [s.name for s in plan(preset)] == ["pretrain/a"]  # the runner reads past the block
    resources = JobResources.from_preset(preset, gpus=2, mem_gb=None)
    assert (resources.partition, resources.gpus, resources.time_min, resources.mem_gb) == ("gpu", 2, 90, 16)
    preset.write_text("executor: {gpu: 4}\n")
    with pytest.raises(ConfigError, match=r"unknown executor setting\(s\) \['gpu'\]"):
        JobResources.from_preset(preset)
    preset.write_text("executor: {time_min: 0}\n")
    with pytest.raises(ConfigError, match="time_min must be an integer >= 1"):
        JobResources.from_preset(preset)


def test_a_multi_gpu_job_pretrains_with_torchrun_then_runs_the_group(tmp_path):
    one = group_commands("quick", ["vit_simmim"], [("pretrain", "vit_simmim", False)], False, "res", "runs", gpus=1)
    assert [c[1:4] for c in one] == [["-m", "mimstudy.study.cli", "run"]]
    four = group_commands("quick", ["swin_simmim", "swin_simmim_ft", "pose_swin_simmim"],
                          [("pretrain", "swin_simmim", True), ("pretrain", "swin_simmim_ft", False),
                           ("downstream", "pose_swin_simmim", False)], False, "res", "runs", gpus=4)
    assert [c[:5] for c in four[:3]] == [[sys.executable, "-m", "torch.distributed.run", "--standalone",
                                          "--nproc_per_node=4"]] * 3
    assert [c[6] for c in four[:3]] == ["mimstudy.study.train"] * 2 + ["mimstudy.study.transfer"]
    assert four[0][-1] == "--force" and "--force" not in four[1]  # stale finished run: from scratch
    assert four[3][-6:-4] == ["--runs", "swin_simmim,swin_simmim_ft,pose_swin_simmim"]


def test_slurm_jobs_ask_for_the_preset_resources(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="slurm cluster.*--executor local"):
        make_executor("slurm", JobResources(folder=str(tmp_path)), "ci")  # no srun on this machine
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{__import__('os').environ['PATH']}")
    executor = make_executor("slurm", JobResources(partition="a100", gpus=4, cpus=16, time_min=90, mem_gb=64,
                                                   folder=str(tmp_path)), "quick")
    script = executor._executor._make_submission_file_text("cmd", "uid")
    for line in ("--partition=a100", "--gpus-per-node=4", "--cpus-per-task=16", "--time=90", "--mem=64GB",
                 "--nodes=1", "--job-name=mimstudy-quick"):
        assert f"#SBATCH {line}\n" in script


def ci_subset(folder, runs=("vit_sup", "vit_simmim")) -> str:
    """The ci preset reduced to ``runs``, pre-training and probes only (to keep the test short)."""
    spec = yaml.safe_load((PRESET_DIR / "ci.yaml").read_text())
    subset = {"name": "ci", "pretrain": {"defaults": spec["pretrain"]["defaults"],
                                         "runs": {r: spec["pretrain"]["runs"][r] for r in runs}},
              "probes": {"defaults": spec["probes"]["defaults"], "runs": list(runs)}}
    path = folder / "ci-subset.yaml"
    path.write_text(yaml.safe_dump(subset))
    return str(path)


@pytest.mark.slow
@requires_real_data
def test_submitit_local_jobs_make_the_runs_of_each_group(tmp_path):
    preset, results, runs = ci_subset(tmp_path), str(tmp_path / "res"), str(tmp_path / "runs")
    lines = []
    done = run_preset(preset, results_dir=results, runs_dir=runs, executor="submitit-local",
                      resources=JobResources(cpus=1, time_min=15, folder=str(tmp_path / "jobs")), log=lines.append)
    steps = plan(preset, results_dir=results, runs_dir=runs)
    assert [s.name for s in done] == [s.name for s in steps] and len(steps) == 4
    assert rerun_reasons(steps, checkpoints=False) == {}  # every result made, by the jobs, with today's code
    submitted = [line for line in lines if line.startswith("[submitit-local] job ") and "log:" in line]
    assert sorted(line.split(": ")[1].split(" ")[0] for line in submitted) == ["vit_simmim", "vit_sup"]  # a job per group
    assert len(list((tmp_path / "jobs" / "ci").glob("*/*_log.out"))) == 2
    # a second call finds everything current and submits nothing
    assert main(["run", "--preset", preset, "--results-dir", results, "--runs-dir", runs,
                 "--executor", "submitit-local"]) == 0
    assert not list((tmp_path / "jobs" / "ci").glob("*/*_log.out"))[2:]
