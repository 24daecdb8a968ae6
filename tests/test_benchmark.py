"""Smoke test of benchmarks/train_throughput.py: one step of each loop on vit_micro_32 (not a timing test)."""

import importlib.util
from pathlib import Path

import numpy as np

from mimstudy.config import OBJECTIVES
from mimstudy.results import load_dataset

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_throughput.py"


def test_train_throughput_runs_and_saves_a_dataset(tmp_path):
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "bench.nc"
    lines = []
    module.main(["--archs", "vit_micro_32", "--precisions", "fp32", "--steps", "1", "--warmup", "1",
                 "--repeats", "1", "--batch-size", "8", "--out", str(out)], log=lines.append)
    ds = load_dataset(out)
    assert list(ds.objective.values) == [o for o in OBJECTIVES if o != "finetune"]  # finetune steps are supervised ones
    assert list(ds.arch.values) == ["vit_micro_32"]
    cell = ds.sel(objective="supervised", arch="vit_micro_32", precision="fp32")
    assert cell.ours_images_per_s > 0 and cell.bare_images_per_s > 0 and np.isfinite(cell.ratio)
    # the supervised step is the bare step: the same FLOPs
    assert cell.gflop_per_step.item() == ds.bare_gflop_per_step.sel(arch="vit_micro_32").item() > 0
    assert ds.peak_gflop_per_s > 0 and "git_commit" in ds.attrs
    assert any(line.startswith("supervised  vit_micro_32") for line in "\n".join(lines).splitlines())
