"""The book's provenance under a figure: one line, a stale warning when needed, the full record collapsed."""

from mimstudy.book.stored import provenance_markdown
from mimstudy.results import load_runs, save_dataset
from mimstudy.study.runner import plan

from .test_results import small_dataset
from .test_runner import fake_results


def test_one_line_a_stale_warning_and_the_record_behind_details(tmp_path, monkeypatch):
    results = tmp_path / "res"
    monkeypatch.setenv("MIMSTUDY_RESULTS_DIR", str(results))
    steps = plan("ci", results_dir=str(results), runs_dir=str(tmp_path / "runs"))
    fake_results(steps)
    ds = load_runs(results / "ci" / "probes")
    text = provenance_markdown(ds, "probes")
    line = text.split("\n\n")[0]
    assert line.startswith(f"**Provenance.** {ds.sizes['model']} runs of preset `ci`; seed 0; commit `")
    assert "Stale" not in text  # every result was just made with today's code
    assert text.count("<details>") == 1 and text.count("\n| `") == ds.sizes["model"]

    # a result from before code hashing, and one whose parameters no longer match the preset
    old = next(s for s in steps if s.name == "probes/vit_moco")
    save_dataset(small_dataset("vit_moco"), old.result, old.config.to_dict(), "ci", 0)
    other = next(s for s in steps if s.name == "probes/vit_sup")
    save_dataset(small_dataset("vit_sup"), other.result, {**other.config.to_dict(), "num_images": 5}, "ci", 0,
                 notebook="probes")
    from mimstudy.book import records

    records._preset_currency.cache_clear()  # pages compute currency once per process
    text = provenance_markdown(load_runs(results / "ci" / "probes"), "probes")
    warning = next(p for p in text.split("\n\n") if p.startswith("**Stale results** (2 of "))
    assert "`vit_moco`: code not recorded (made before code hashing)" in warning
    assert "`vit_sup`: parameters changed: num_images 5 -> 16" in warning
    assert "| stale: code not recorded" in text
