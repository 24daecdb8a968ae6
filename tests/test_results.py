import json
import os

import numpy as np
import pytest
import xarray as xr

from mimstudy.atomic import atomic_path
from mimstudy.config import ProbeConfig
from mimstudy.results import load_dataset, load_runs, result_path, save_dataset, save_result, stored_parameters


def small_dataset(model: str) -> xr.Dataset:
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    return xr.Dataset({"attention_distance": (("layer", "head"), values)},
                      coords={"layer": [1, 2], "head": [0, 1, 2], "model": model, "objective": "simmim"})


def test_roundtrip_keeps_values_coords_and_provenance(tmp_path):
    path = save_dataset(small_dataset("m"), tmp_path / "a" / "r.nc", {"lr": 0.1, "bf16": False}, "ci", 7)
    back = load_dataset(path)
    xr.testing.assert_equal(back.drop_attrs(), small_dataset("m"))
    assert json.loads(back.attrs["parameters"]) == {"lr": 0.1, "bf16": False}
    assert back.attrs["preset"] == "ci" and back.attrs["seed"] == 7
    assert len(back.attrs["git_commit"]) in (7, 40) or back.attrs["git_commit"] == "unknown"
    assert "torch" in json.loads(back.attrs["package_versions"])
    assert back.attrs["git_dirty"] in (0, 1)


def test_git_commit_of_a_tree_without_git_comes_from_the_environment(tmp_path, monkeypatch):
    from mimstudy.provenance import GIT_COMMIT_VARIABLE, git_commit

    monkeypatch.delenv(GIT_COMMIT_VARIABLE, raising=False)
    assert git_commit(tmp_path) == ("unknown", False)  # tmp_path is no git repository
    assert git_commit()[0] not in ("unknown", "0123abc")  # this checkout asks git
    monkeypatch.setenv(GIT_COMMIT_VARIABLE, "0123abc")
    assert git_commit(tmp_path) == ("0123abc", False)
    assert git_commit() == ("0123abc", False)  # the variable wins, also inside a repository


def test_a_run_remaking_committed_results_is_not_dirty(tmp_path, monkeypatch):
    import subprocess

    from mimstudy.provenance import GIT_COMMIT_VARIABLE, git_commit

    monkeypatch.delenv(GIT_COMMIT_VARIABLE, raising=False)
    git = lambda *args: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                                       check=True, capture_output=True)
    (tmp_path / "results" / "quick").mkdir(parents=True)
    (tmp_path / "results" / "quick" / "run.nc").write_text("old")
    (tmp_path / "code.py").write_text("x = 1")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "c")
    assert git_commit(tmp_path)[1] is False
    (tmp_path / "results" / "quick" / "run.nc").write_text("new")  # the run's own output
    assert git_commit(tmp_path / "results")[1] is False
    (tmp_path / "code.py").write_text("x = 2")  # an edit of the code
    assert git_commit(tmp_path / "results")[1] is True


def test_provenance_names_the_hardware(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    back = load_dataset(save_dataset(small_dataset("m"), tmp_path / "r.nc", {}, "ci", 0))
    assert back.attrs["hardware"].startswith("CPU only") and back.attrs["hardware"].endswith(f"{os.cpu_count()} CPUs")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "NVIDIA H200")
    assert load_dataset(save_dataset(small_dataset("m"), tmp_path / "r.nc", {}, "ci", 0)).attrs["hardware"] \
        == f"NVIDIA H200 (CUDA), {os.cpu_count()} CPUs"


def test_save_result_uses_config_path_and_parameters(tmp_path):
    config = ProbeConfig(preset="ci", run_id="vit_x", results_dir=str(tmp_path))
    path = save_result(small_dataset("vit_x"), config)
    assert path == result_path(config) == tmp_path / "ci" / "probes" / "vit_x.nc"
    assert stored_parameters(path) == config.to_dict()
    assert stored_parameters(tmp_path / "missing.nc") is None


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_load_runs_concatenates_models(tmp_path):
    for name in ("b", "a"):
        save_dataset(small_dataset(name), tmp_path / f"{name}.nc", {}, "ci", 0)
    both = load_runs(tmp_path)
    assert list(both["model"].values) == ["a", "b"]
    assert both["attention_distance"].dims == ("model", "layer", "head")
    with pytest.raises(FileNotFoundError, match="make study"):
        load_runs(tmp_path / "empty")


def test_load_runs_pads_coords_only_some_runs_have(tmp_path):
    vit = small_dataset("vit")
    swin = small_dataset("swin")
    swin = swin.assign_coords(stage=("layer", np.arange(swin.sizes["layer"])))
    for ds in (vit, swin):
        save_dataset(ds, tmp_path / f"{ds['model'].item()}.nc", {}, "ci", 0)
    both = load_runs(tmp_path)
    assert both["stage"].dims == ("model", "layer")
    assert both["stage"].sel(model="vit").isnull().all()
    np.testing.assert_array_equal(both["stage"].sel(model="swin"), np.arange(swin.sizes["layer"]))


def test_load_runs_pads_dimensions_whose_size_differs_between_runs(tmp_path):
    """Detections per image differ between detection runs (no coordinate on that axis): shorter runs are NaN-padded."""
    for name, d in (("det_a", 3), ("det_b", 5)):
        found = np.arange(2 * d * 6, dtype=np.float32).reshape(2, d, 6)
        ds = xr.Dataset({"example_predicted_instances": (("example", "detection", "detection_field"), found)},
                        coords={"model": name, "detection_field": list("abcdef")})
        save_dataset(ds, tmp_path / f"{name}.nc", {}, "ci", 0)
    both = load_runs(tmp_path)
    assert both.sizes["detection"] == 5
    a = both["example_predicted_instances"].sel(model="det_a").values
    np.testing.assert_array_equal(a[:, :3], np.arange(36, dtype=np.float32).reshape(2, 3, 6))
    assert np.isnan(a[:, 3:]).all()
    assert not np.isnan(both["example_predicted_instances"].sel(model="det_b").values).any()
