"""Every test that reads the ``ci`` preset run once per session (conftest's ``ci_results``, every ci step
under nbval) or the book built from it beside the committed results (``committed_book``).

They live in this one module because ``make test`` runs the suite in two pytest-xdist workers with
``--dist loadfile``: a module goes to one worker, and session fixtures are made once per worker, so the ci
run and the book build are made once, on one worker, while the other worker runs the rest. conftest puts
this module first (it takes longest) and refuses a test elsewhere that asks for these fixtures."""

import re
from pathlib import Path

from mimstudy.study.runner import plan, run_preset

from .browser import check_book
from .conftest import BOOK_PRESETS, real_data_available
from .test_book import headings_of, verdicts_of
from .test_browser import BROWSER, needs_browser

ROOT = Path(__file__).resolve().parents[1]


def test_book_builds_from_committed_results(committed_book):
    page = (committed_book / "book" / "attention_distance.html").read_text()
    shown = [p for p in BOOK_PRESETS if (ROOT / "results" / p / "probes").is_dir()]
    fresh = ["ci"] if real_data_available() else []  # the fresh ci run, built into the same book
    assert headings_of(page) == shown + fresh and verdicts_of(page) == shown + fresh
    assert "Traceback" not in page
    # wide tables scroll inside the column (book/_ext/static/tables.css), never clipped at its edge
    assert "_static/tables.css" in page and (committed_book / "_static" / "tables.css").is_file()
    # one training seed per model in the committed presets: every verdict is undetermined, with the reason
    assert re.search(r"<strong>undetermined\.</strong>", page) and "only 1 training seed" in page
    scorecard = (committed_book / "book" / "scorecard.html").read_text()
    assert "not run" in scorecard and "undetermined" in scorecard and "attention_distance.html" in scorecard
    assert "<table" in page and "data:image/png" in page or "<img" in page
    # compact provenance (one line, the record collapsed) and the commands that re-make the chapter
    assert page.count("<strong>Provenance.</strong>") == len(shown + fresh) and page.count("<details>") >= len(shown)
    assert "Re-make these results" in page and "papermill" in page


@needs_browser
def test_every_page_of_the_built_book_opens_cleanly(committed_book):
    check = check_book(committed_book, BROWSER)
    chapters = len(list((committed_book / "book").glob("*.html")))
    assert chapters >= 10 and check.pages >= chapters + 1  # the chapters, the index, genindex and search
    assert check.images > 0 and check.links > 0
    assert not check.problems, "\n".join(check.problems)
    print(f"browser check: {check.pages} pages, {check.images} images, {check.links} internal links")


def test_notebooks_pass_nbval_with_ci_parameters(ci_results):
    """The ci_results fixture runs every ci step under nbval (tests/conftest.py, nbval_preset) and fails
    when nbval does: here, every step's result is where the runner would have written it."""
    results, runs = ci_results
    steps = plan("ci", results_dir=results, runs_dir=runs)
    assert steps and all(step.result.is_file() for step in steps)
    assert (Path(results) / "ci" / "probes" / "vit_simmim.nc").is_file()


def test_ci_preset_end_to_end_then_skips(ci_results):
    results, runs = ci_results
    lines = []
    assert run_preset("ci", results_dir=results, runs_dir=runs, log=lines.append) == []
    assert sum(line.startswith("[skip]") for line in lines) == len(plan("ci"))
    from mimstudy.results import load_runs

    ds = load_runs(f"{results}/ci/probes")
    assert set(ds["objective"].values) == {"supervised", "moco", "simmim", "finetune", "random"}
    assert {"mean_row_distance", "uniform_distance", "uniform_entropy"} <= set(ds.data_vars)
    assert ds["arch"].sel(model="swin_random").item() == "swinv2_micro_32"
    assert ds["attention_distance"].dims == ("model", "layer", "head", "image")
    distance = ds["attention_distance"]
    assert distance.min().item() > 0  # NaN where a Swin stage has fewer heads than the widest one
    assert distance.sel(model="vit_sup").count().item() == 4 * 4 * 16  # vit_micro_32: 4 layers x 4 heads x 16 images
    accuracy = load_runs(f"{results}/ci/evaluate")
    assert accuracy["knn_accuracy"].dims == ("model", "weights", "pool")
    assert list(accuracy["weights"].values) == ["pretrained", "random_init", "raw_pixels"]
    assert ((accuracy["knn_accuracy"] >= 0) & (accuracy["knn_accuracy"] <= 1)).all()
    assert list(accuracy["weights"].values) == ["pretrained", "random_init", "raw_pixels"]


def test_a_stored_run_remade_is_bitwise_equal(ci_results, tmp_path, capsys):
    """The ci preset's results (made by the runner, pinned) re-made from nothing: every value, and the
    final weights, bitwise the same. A changed stored value is found and reported."""
    from mimstudy.results import load_dataset
    from mimstudy.study.cli import main

    import shutil

    results = str(tmp_path / "stored")
    shutil.copytree(ci_results[0], results)  # the session's ci results stay untouched
    assert main(["verify", "--preset", "ci", "--runs", "sweep_r40_p4", "--results-dir", results,
                 "--scratch", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "weights/sweep_r40_p4.safetensors: blocks.0.attn.qkv.weight" in out and " differ" not in out
    stored = f"{results}/ci/probes/sweep_r40_p4.nc"
    ds = load_dataset(stored)
    name = next(n for n in ds.data_vars if ds[n].dtype.kind == "f")
    ds[name].values.flat[0] += 1.0
    ds.to_netcdf(stored, engine="h5netcdf")
    assert main(["verify", "--preset", "ci", "--runs", "sweep_r40_p4", "--results-dir", results,
                 "--scratch", str(tmp_path / "b")]) == 1
    assert f"differs         {stored}: {name}: max |diff| 1 in 1 of" in capsys.readouterr().out
