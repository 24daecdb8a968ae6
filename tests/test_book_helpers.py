"""Book helpers: picking models by objective, stripping concatenation padding, Markdown tables."""

import json

import numpy as np
import pytest
import xarray as xr

from mimstudy import book


def probes(models: dict, layers=4, heads=2, images=5):
    """``models``: run id -> (objective, arch, number of layers actually present)."""
    ids = list(models)
    data = np.full((len(ids), layers, heads, images), np.nan)
    for i, (_, _, n) in enumerate(models.values()):
        data[i, :n] = 1.0 + i
    prov = [json.dumps({"parameters": json.dumps({"run_id": m, "init_from": "x"}), "seed": 0}) for m in ids]
    return xr.Dataset(
        {"attention_distance": (("model", "layer", "head", "image"), data)},
        coords={"model": ids, "objective": ("model", [v[0] for v in models.values()]),
                "arch": ("model", [v[1] for v in models.values()]), "provenance": ("model", prov),
                "layer": np.arange(1, layers + 1)},
    )  # fmt: skip


@pytest.fixture
def ds():
    return probes({"sim": ("simmim", "vit_a", 4), "sup1": ("supervised", "vit_a", 4), "sup0": ("supervised", "vit_a", 4),
                   "swin": ("supervised", "swinv2_a", 2)})  # fmt: skip


def test_models_by_objective_and_panels(ds):
    assert book.models_by_objective(ds) == {"supervised": ["sup1", "sup0"], "simmim": ["sim"]}
    assert book.models_by_objective(ds, "swinv2") == {"supervised": ["swin"]}
    assert book.panel_models(ds) == ["sup1", "sim"]
    assert book.panel_models(ds, objectives=("simmim",)) == ["sim"]
    assert book.find_model(ds, "moco") is None and book.find_model(ds, "simmim") == "sim"


def test_absent_note_names_missing_objectives(ds, monkeypatch):
    monkeypatch.setenv("MIMSTUDY_BOOK_PRESET", "ci")
    note = book.absent_note(ds, objectives=("supervised", "moco", "simmim"))
    assert "MoCo v3" in note and "`ci`" in note and "SimMIM" not in note
    assert book.absent_note(ds, objectives=("supervised",)) == ""


def test_restrict_drops_padding_from_other_models(ds):
    assert book.restrict(ds, ["swin"]).sizes["layer"] == 2
    assert book.restrict(ds, ["swin", "sim"]).sizes["layer"] == 4


def test_per_layer_table_rows_and_stage_column():
    values = xr.DataArray([[1.0, 2.0], [3.0, 4.0]], dims=("model", "layer"),
                          coords={"model": ["a", "b"], "layer": [1, 2], "stage": ("layer", [0, 1])})
    table = book.per_layer_table(values, digits=1, unit="px").splitlines()
    assert table[0] == "| layer | stage | a (px) | b (px) |"
    assert table[2] == "| 1 | 0 | 1.0 | 3.0 |" and len(table) == 4


def test_evaluation_table_and_parameters(ds):
    ev = xr.Dataset({"knn_accuracy": (("model", "weights"), [[0.8, 0.3]]),
                     "linear_accuracy": (("model", "weights"), [[0.9, 0.4]])},
                    coords={"model": ["sup"], "objective": ("model", ["supervised"]), "arch": ("model", ["vit_a"]),
                            "weights": ["pretrained", "random_init"]})  # fmt: skip
    rows = book.evaluation_table(ev).splitlines()
    assert rows[2] == "| `sup` | supervised | vit_a | 80.0% | 30.0% | 90.0% | 40.0% |"
    assert book.parameters_of(ds, "sim")["init_from"] == "x"


def test_panels_and_run_attr(ds):
    sub = book.panels(ds, "swinv2")
    assert list(sub["model"].values) == ["swin"] and sub.sizes["layer"] == 2
    assert book.panels(ds, "convnext") is None
    assert book.run_attr(ds, "sim", "seed") == 0 and book.run_attr(ds, "sim", "missing", "d") == "d"
