"""Book helpers: picking models by objective, stripping concatenation padding, Markdown tables."""

import json

import numpy as np
import pytest
import xarray as xr
import yaml

from mimstudy.book import stored as book


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


def test_absent_note_names_the_given_preset(ds, monkeypatch):
    monkeypatch.setenv("MIMSTUDY_BOOK_PRESET", "quick,gpu")
    note = book.absent_note(ds, objectives=("moco",), preset="gpu")
    assert "`gpu`" in note and "`quick`" not in note and "MoCo v3" in note


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    """An empty results folder as ``$MIMSTUDY_RESULTS_DIR``; make ``<preset>/`` folders in it to add presets."""
    monkeypatch.setenv("MIMSTUDY_RESULTS_DIR", str(tmp_path))
    return tmp_path


def test_book_presets_parse_the_list_in_order(results_dir, monkeypatch):
    for name in ("cpu", "gpu", "ci"):
        (results_dir / name).mkdir()
    monkeypatch.setenv("MIMSTUDY_BOOK_PRESET", " cpu , gpu,,ci,gpu ")
    assert book.book_presets() == ["cpu", "gpu", "ci"]
    assert book.book_preset() == "cpu"
    monkeypatch.setenv("MIMSTUDY_BOOK_PRESET", "gpu")
    assert book.book_presets() == ["gpu"] and book.book_preset() == "gpu"


def test_book_presets_drop_absent_presets_and_keep_the_first_only_when_none_exists(results_dir, monkeypatch):
    (results_dir / "gpu").mkdir()
    (results_dir / "cpu").write_text("a file, not a results folder")
    monkeypatch.setenv("MIMSTUDY_BOOK_PRESET", "paper,cpu,gpu,nope")
    assert book.book_presets() == ["gpu"] and book.book_preset() == "gpu"
    # no listed preset has results: the first stays, so that loading them raises the usual clear error
    monkeypatch.setenv("MIMSTUDY_BOOK_PRESET", "paper,nope")
    assert book.book_presets() == ["paper"]
    with pytest.raises(FileNotFoundError, match="no results in .*paper.*run the study first"):
        book.load_results("probes", book.book_presets()[0])


def test_book_presets_default_to_the_claim_preset_then_quick_then_gpu_when_present(results_dir, monkeypatch):
    monkeypatch.delenv("MIMSTUDY_BOOK_PRESET", raising=False)
    assert book.book_presets() == ["cpu"]  # nothing stored: the first, whose loading says what to run
    (results_dir / "quick").mkdir()
    assert book.book_presets() == ["quick"] and book.book_preset() == "quick"
    (results_dir / "gpu").mkdir()
    (results_dir / "cpu").mkdir()
    assert book.book_presets() == ["cpu", "quick", "gpu"] and book.book_preset() == "cpu"
    monkeypatch.setenv("MIMSTUDY_BOOK_PRESET", " , ")
    assert book.book_presets() == ["cpu", "quick", "gpu"]


def test_preset_heading_names_the_preset_and_its_description(tmp_path):
    description = yaml.safe_load((book.REPO_ROOT / "presets" / "gpu.yaml").read_text())["description"]
    assert description and book.preset_heading("gpu") == f"### The `gpu` preset: {description}"
    assert book.preset_heading("no_such_preset") == "### The `no_such_preset` preset"
    bare = tmp_path / "mine.yaml"
    bare.write_text("name: mine\npretrain: {}\n")
    assert book.preset_heading(str(bare)) == f"### The `{bare}` preset"
    bare.write_text("name: mine\ndescription: my own runs\n")
    assert book.preset_heading(str(bare)).endswith("preset: my own runs")


def test_restrict_drops_padding_from_other_models(ds):
    assert book.restrict(ds, ["swin"]).sizes["layer"] == 2
    assert book.restrict(ds, ["swin", "sim"]).sizes["layer"] == 4


@pytest.mark.parametrize("values", [
    np.array([[np.nan, 1.0, np.nan], [np.nan, np.nan, np.nan]]),  # floats: NaN is missing
    np.array([[None, "a", None], [None, None, "b"]], dtype=object),  # objects: None is missing
    np.array([[1, 2, 3], [4, 5, 6]]),  # integers are never missing
    np.zeros((2, 0)),  # an empty axis
])
def test_present_along_is_xarray_notnull_any(values):
    da = xr.DataArray(values, dims=("a", "b"))
    for axis, dim in enumerate(da.dims):
        expected = da.notnull().any([d for d in da.dims if d != dim]).values
        np.testing.assert_array_equal(book.present_along(values, axis), expected)


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
    rows = book.evaluation_table(ev).splitlines()  # a result made before pooling and pixel scores
    assert rows[2] == "| `sup` | supervised | vit_a | 80.0% | – | 30.0% | – | 90.0% | – | 40.0% | – |"
    pooled = xr.Dataset({name: (("model", "weights", "pool"), [[[a, a + 0.1], [b, b + 0.1], [0.7, 0.7]]])
                         for name, a, b in (("knn_accuracy", 0.5, 0.2), ("linear_accuracy", 0.6, 0.3))},
                        coords={"model": ["sup"], "objective": ("model", ["supervised"]), "arch": ("model", ["vit_a"]),
                                "weights": ["pretrained", "random_init", "raw_pixels"], "pool": ["head", "patch_mean"]})
    rows = book.evaluation_table(pooled).splitlines()
    assert rows[2] == "| `sup` | supervised | vit_a | 50.0% | 60.0% | 30.0% | 70.0% | 60.0% | 70.0% | 40.0% | 70.0% |"
    assert book.parameters_of(ds, "sim")["init_from"] == "x"


def test_panels_and_run_attr(ds):
    sub = book.panels(ds, "swinv2")
    assert list(sub["model"].values) == ["swin"] and sub.sizes["layer"] == 2
    assert book.panels(ds, "convnext") is None
    assert book.run_attr(ds, "sim", "seed") == 0 and book.run_attr(ds, "sim", "missing", "d") == "d"


def test_provenance_markdown_names_commit_hardware_and_notes(ds):
    attrs = [{"preset": "gpu", "seed": 0, "git_commit": "0123456789abcdef", "git_dirty": 0,
              "package_versions": json.dumps({"torch": "2.11.0", "timm": "1.0.31"}),
              "hardware": "NVIDIA H200 (CUDA), 16 CPUs", "provenance_note": "commit set after the run"}
             if m == "sim" else {"preset": "quick", "seed": 1, "git_commit": "fedcba9876543210", "git_dirty": 1}
             for m in ds["model"].values]
    ds = ds.assign_coords(provenance=("model", [json.dumps(a) for a in attrs]))
    from mimstudy.book.records import provenance_line, record_table, run_records

    records = run_records(ds)
    line = provenance_line(records)  # one line for the figure, whatever the number of runs
    assert "\n" not in line and line.startswith(f"**Provenance.** {ds.sizes['model']} runs of preset ")
    assert "`gpu`" in line and "`quick`" in line and "seeds 0, 1" in line
    assert "`0123456789`" in line and "`fedcba9876 (uncommitted changes)`" in line and "NVIDIA H200 (CUDA)" in line
    rows = record_table(records, {"sim": "code changed: x.py"}).splitlines()[2:]
    assert len(rows) == ds.sizes["model"]
    sim = next(row for row in rows if row.startswith("| `sim`"))
    assert "`0123456789`" in sim and "| 2.11.0 |" in sim and "NVIDIA H200 (CUDA), 16 CPUs (commit set after the run)" in sim
    assert sim.endswith("| stale: code changed: x.py |")
    other = next(row for row in rows if row.startswith("| `sup0`"))
    assert "(dirty)" in other and other.endswith("| yes |")