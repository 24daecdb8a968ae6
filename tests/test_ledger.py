"""The campaign's ledger: pieces from the preset, the run log, measured vs estimated times, totals."""

import pytest

from mimstudy.config import ConfigError
from mimstudy.study import ledger

PRESET = """\
name: tiny
seeds: [0, 1]
pieces:
  - {name: first, runs: "a-s0", estimate_min: 10}
  - {name: second, runs: "a-s1", estimate_min: 20, note: after the first}
  - {name: third, runs: "b-*"}
pretrain:
  defaults: {objective: supervised, arch: vit_micro_32_sincos, dataset: fashion_mnist_photos, train_size: 64,
             val_size: 32, epochs: 1, batch_size: 32, keep_epochs: ""}
  runs:
    a: {}
    b: {}
"""


@pytest.fixture
def preset(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(PRESET)
    return path


def test_pieces_in_order_and_bad_pieces(preset, tmp_path):
    assert [(p.name, p.patterns, p.estimate_min) for p in ledger.preset_pieces(preset)] == [
        ("first", ["a-s0"], 10), ("second", ["a-s1"], 20), ("third", ["b-*"], None)]
    bad = tmp_path / "bad.yaml"
    bad.write_text(PRESET.replace("estimate_min: 10", "minutes: 10"))
    with pytest.raises(ConfigError, match="piece 1 must be a mapping of name, runs"):
        ledger.preset_pieces(bad)


def test_rows_read_the_log_and_total(preset, tmp_path):
    results = tmp_path / "results"
    ledger.append_log(results, "tiny", "a-s0", wall_s=600, jobs=2, steps=1)
    ledger.append_log(results, "tiny", "a-s0", wall_s=900, jobs=2, steps=1)  # the latest line counts
    (log,) = [ledger.read_log(ledger.log_path(results, "tiny"))]
    assert [row["wall_s"] for row in log] == ["600", "900"] and log[0]["jobs"] == "2" and float(log[0]["matmul_gflops_1thread"]) > 0
    rows = ledger.ledger(preset, str(results))
    assert [(r.steps, r.stored, r.current, r.wall_min) for r in rows] == [(1, 0, 0, 15.0), (1, 0, 0, None), (2, 0, 0, None)]
    assert [r.status for r in rows] == ["not made"] * 3
    text = ledger.ledger_markdown(rows, "tiny")
    assert "**15.0 min** measured" in text and "~20 min estimated" in text and "unknown: pilot first" in text
    assert text.endswith("**Total**: 0 of 3 pieces committed and current; 15 min measured, ~20 min estimated for "
                         "the 3 left, of which 1 not yet estimated (their pilot comes first).")
