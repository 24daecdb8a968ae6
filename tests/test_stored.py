"""The book reads each results folder once per build: the combined runs are kept under a digest of the files."""

import os
import pickle
import shutil

import pytest

from mimstudy.book.stored import REPO_ROOT, _combined_file, load_unique_runs
from mimstudy.results import ENGINE, load_dataset

PROBES = REPO_ROOT / "results" / "quick" / "probes"
needs_quick = pytest.mark.skipif(not PROBES.is_dir(), reason="no committed quick probes in this checkout")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """Three committed ViT probe files in a folder of their own, and a cache folder of its own."""
    monkeypatch.setenv("MIMSTUDY_REACH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "probes").mkdir()
    for path in sorted(PROBES.glob("vit_*.nc"))[:3]:
        shutil.copy(path, tmp_path / "probes" / path.name)
    return tmp_path / "probes"


@needs_quick
def test_a_cached_read_is_identical_to_a_fresh_one(folder, monkeypatch):
    first = load_unique_runs(folder)
    entry = _combined_file(sorted(folder.glob("*.nc")))
    assert entry.is_file() and oct(entry.stat().st_mode & 0o777) == "0o600"
    assert load_unique_runs(folder).identical(first)  # read from the entry
    monkeypatch.setenv("MIMSTUDY_REACH_CACHE", "off")
    assert _combined_file(sorted(folder.glob("*.nc"))) is None
    assert load_unique_runs(folder).identical(first)  # and as read from the files


@needs_quick
def test_a_changed_file_is_read_again(folder):
    before = load_unique_runs(folder)
    path = sorted(folder.glob("*.nc"))[0]
    ds = load_dataset(path)
    run = str(ds["model"].item())
    ds["attention_distance"] = ds["attention_distance"] + 1.0  # another result under the same name
    path.unlink()
    ds.to_netcdf(path, engine=ENGINE)
    after = load_unique_runs(folder)
    shift = after["attention_distance"].sel(model=run) - before["attention_distance"].sel(model=run)
    assert float(shift.min()) == pytest.approx(1.0) and float(shift.max()) == pytest.approx(1.0)
    assert len(list((folder.parent / "cache").glob("runs-*.pickle"))) == 2  # one entry per version of the files


@needs_quick
def test_an_entry_others_can_write_is_not_read(folder):
    true = load_unique_runs(folder)
    entry = _combined_file(sorted(folder.glob("*.nc")))
    with open(entry, "wb") as f:  # planted: another dataset under the same name, writable by everyone
        pickle.dump(true.isel(model=[0]), f)
    os.chmod(entry, 0o666)
    assert load_unique_runs(folder).identical(true)
    os.chmod(entry, 0o600)  # made again above (atomically, private): the entry is the true one now
    assert load_unique_runs(folder).sizes["model"] == true.sizes["model"]
