"""The concept ladder's measured order, stored as a result (mimstudy.study.concept_ladder)."""

import xarray as xr

from mimstudy.study import concept_ladder


def test_the_ladder_is_measured_once_and_kept_while_its_code_is_unchanged(tmp_path, monkeypatch):
    calls = []

    def measure():
        calls.append(1)
        return xr.Dataset({"probe": ("concept_set", [0.6, 0.5]), "nmi": ("concept_set", [0.5, 0.3])},
                          coords={"concept_set": ["garments", "hybrids"]})

    monkeypatch.setattr(concept_ladder, "measure_ladder", measure)
    assert concept_ladder.stored_ladder(tmp_path) == (None, False)
    path, made = concept_ladder.store_ladder(tmp_path)
    assert made and path == tmp_path / "concepts" / "ladder.nc" and len(calls) == 1
    assert concept_ladder.store_ladder(tmp_path) == (path, False) and len(calls) == 1  # current: kept
    ds, current = concept_ladder.stored_ladder(tmp_path)
    assert current and list(ds["concept_set"].values) == ["garments", "hybrids"] and ds.attrs["preset"] == "concepts"
    monkeypatch.setattr(concept_ladder, "ladder_code_digest", lambda: "another")  # its code changed
    assert concept_ladder.stored_ladder(tmp_path)[1] is False
    assert concept_ladder.store_ladder(tmp_path) == (path, True) and len(calls) == 2


def test_the_committed_ladder_is_current():
    from mimstudy.book.stored import REPO_ROOT

    ds, current = concept_ladder.stored_ladder(REPO_ROOT / "results")
    assert ds is not None and current, "re-measure it: python -m mimstudy.study.concept_ladder"
    assert set(ds["concept_set"].values) >= {"hybrids", "materials", "shapes", "digits", "outfits", "garments"}
