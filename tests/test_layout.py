"""The package is laid out as the pipeline runs: no stage imports a later one."""

from __future__ import annotations

import ast
from pathlib import Path

import mimstudy

PACKAGE = Path(mimstudy.__file__).parent
STAGES = ["data", "models", "objectives", "training", "probes", "downstream", "study", "book"]
ROOT = {"config", "results", "provenance", "atomic", "distributed", "numerics"}


def _imports(path: Path) -> set[str]:
    """Absolute mimstudy modules a file imports (lazy imports inside functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; use absolute 'from mimstudy.<stage>...' imports"
            if node.module and node.module.startswith("mimstudy"):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mimstudy"))
    return found


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_top_level_holds_only_stages_and_shared_modules():
    names = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert names <= ROOT, f"flat modules outside a stage: {sorted(names - ROOT)}"
    assert packages <= set(STAGES), f"sub-packages that are not stages: {sorted(packages - set(STAGES))}"


def test_no_stage_imports_a_later_stage():
    bad = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        own = rel.parts[0] if len(rel.parts) > 1 else None
        for module in _imports(path):
            target = _stage(module)
            if target is None or target in ROOT:
                continue
            assert target in STAGES, f"{rel} imports {module}, which is in no stage"
            if own is None:  # a shared root module may read stages lazily for validation only
                continue
            if STAGES.index(target) > STAGES.index(own):
                bad.append(f"{rel} ({own}) imports {module} ({target})")
    assert not bad, "imports that point up the pipeline:\n" + "\n".join(bad)


def test_the_checker_sees_a_backward_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("from mimstudy.book.claims.verdicts import ClaimVerdict\n")
    assert _stage(next(iter(_imports(bad)))) == "book"
