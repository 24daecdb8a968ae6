"""The concept ladder's measured order (Section 4.1), stored as a result the book replays.

:func:`mimstudy.downstream.concepts.concept_separability` fits a seen-class HOG classifier on 3,000
pre-training composites and measures how well it separates each concept set (~15 s, and it needs
Fashion-MNIST). The book only replays stored data, so the measurement is made once and stored with
its provenance::

    python -m mimstudy.study.concept_ladder            # writes results/concepts/ladder.nc (skipped when current)

A stored ladder is current while the code that measured it is unchanged (a digest of the syntax of
this module and every package module it imports, recorded as ``code_digest_ladder``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import xarray as xr

from mimstudy.results import load_dataset, save_dataset, stored_attrs

LADDER_FILE = Path("concepts") / "ladder.nc"


def ladder_path(results_dir: str | Path = "results") -> Path:
    return Path(results_dir) / LADDER_FILE


def ladder_code_digest() -> str:
    """The digest of the code that measures the ladder: what makes a stored ladder stale."""
    from mimstudy.provenance import _file_facts, code_closure

    digest = hashlib.sha256()
    for path in code_closure(Path(__file__).read_text()):
        digest.update(path.name.encode() + b"\0" + _file_facts(path, "mimstudy")[0].encode())
    return digest.hexdigest()[:16]


def measure_ladder() -> xr.Dataset:
    """Probe accuracy and NMI of every concept set of the ladder and the covered garments (``concept_set``)."""
    from mimstudy.downstream.concepts import LADDER, concept_separability

    names = (*LADDER, "garments")
    measured = concept_separability(names)
    return xr.Dataset({key: ("concept_set", [measured[n][key] for n in names]) for key in ("probe", "nmi")},
                      coords={"concept_set": list(names)})


def store_ladder(results_dir: str | Path = "results", force: bool = False) -> tuple[Path, bool]:
    """Measure and store the ladder unless a current one is stored: ``(path, made)``."""
    path, digest = ladder_path(results_dir), ladder_code_digest()
    if not force and (stored_attrs(path) or {}).get("code_digest_ladder") == digest:
        return path, False
    ds = measure_ladder()
    ds.attrs["code_digest_ladder"] = digest
    return save_dataset(ds, path, {}, "concepts", 0), True


def stored_ladder(results_dir: str | Path = "results") -> tuple[xr.Dataset | None, bool]:
    """``(the stored ladder or None, whether it is current)``."""
    path = ladder_path(results_dir)
    if not path.is_file():
        return None, False
    ds = load_dataset(path)
    return ds, ds.attrs.get("code_digest_ladder") == ladder_code_digest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mimstudy.study.concept_ladder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--force", action="store_true", help="re-measure a current ladder")
    args = parser.parse_args(argv)
    path, made = store_ladder(args.results_dir, args.force)
    print(f"concept ladder: {path}" + ("" if made else " is current (--force re-measures it)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
