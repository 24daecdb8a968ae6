"""mimstudy verify: stored results re-made in a scratch folder and compared value by value."""

import numpy as np
import pytest

from mimstudy.study.verify import compare_arrays


@pytest.mark.parametrize("a, b, equal, max_abs, differing", [
    ([1.0, np.nan], [1.0, np.nan], True, 0.0, 0),  # NaN where NaN is equal
    ([1.0, 2.0], [1.0, 2.5], False, 0.5, 1),
    ([0.0], [-0.0], False, 0.0, 1),  # the same number, other bits
    ([1.0, np.nan], [1.0, 3.0], False, 0.0, 1),  # NaN against a number: differs, no finite gap
    (["a", "b"], ["a", "c"], False, float("nan"), 1),
    ([1, 2], [1, 2], True, 0.0, 0),
])
def test_arrays_compare_bitwise(a, b, equal, max_abs, differing):
    found = compare_arrays("x", np.array(a), np.array(b))
    assert found.equal is equal and found.differing == differing
    assert (np.isnan(found.max_abs) and np.isnan(max_abs)) or found.max_abs == max_abs
    assert ("bitwise equal" in found.line()) is equal


def test_arrays_of_other_shapes_or_types_are_not_comparable():
    for a, b in ((np.zeros(2), np.zeros(3)), (np.zeros(2, np.float32), np.zeros(2)), (np.zeros(2), None)):
        found = compare_arrays("x", a, b)
        assert not found.equal and np.isinf(found.max_abs) and "not comparable" in found.line()


def test_durations_are_not_compared(tmp_path):
    import xarray as xr

    from mimstudy.study.verify import compare_results

    for name, seconds in (("a", 1.0), ("b", 2.0)):
        xr.Dataset({"loss": ("epoch", [0.5]), "seconds": ("epoch", [seconds])}, coords={"epoch": [1]}).to_netcdf(
            tmp_path / f"{name}.nc", engine="h5netcdf")
    found = compare_results(tmp_path / "a.nc", tmp_path / "b.nc")
    assert [d.item.split(": ")[1] for d in found] == ["epoch", "loss"] and all(d.equal for d in found)
