"""Where a result came from: parameters, code version, package versions, time and machine."""

from __future__ import annotations

import ast
import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

PACKAGES = ("mimstudy", "torch", "torchvision", "timm", "numpy", "scipy", "xarray", "papermill")


PACKAGE_DIR = Path(__file__).resolve().parent
CODE_ROOT = PACKAGE_DIR.parent  # the repository: notebooks/ beside the package
GIT_COMMIT_VARIABLE = "MIMSTUDY_GIT_COMMIT"
RESULTS_FOLDER = "results"  # the repository's results tree (committed datasets): not code


def git_commit(cwd: str | Path | None = None) -> tuple[str, bool]:
    """``(commit, dirty)`` of the repository holding this package, or ``("unknown", False)``.

    ``dirty``: tracked files other than those under ``results/`` differ from the commit.

    ``$MIMSTUDY_GIT_COMMIT``, when set, wins: a copy of a clean checkout sent elsewhere (a GPU
    machine, say) may have no ``.git``, or an unrelated one, so whoever sent it names the commit.
    """
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    exported = os.environ.get(GIT_COMMIT_VARIABLE, "").strip()
    if exported:
        return exported, False
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        # committed results are outputs: a run re-making them (its own files changing) is no edit of the code
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                 f":(top,exclude){RESULTS_FOLDER}"], cwd=cwd, capture_output=True, text=True,
                                check=True, timeout=10).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def hardware() -> str:
    """The processor the run could use: the CUDA device when one is visible, and the CPU count."""
    cpus = f"{os.cpu_count()} CPUs"
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name()} (CUDA), {cpus}"
    except (ImportError, RuntimeError):
        pass
    return f"CPU only ({platform.processor() or platform.machine()}), {cpus}"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


# --- the code a result depends on -------------------------------------------------------------------
# A notebook step depends on its notebook's code cells and on every ``mimstudy`` source file they
# import, transitively (imports inside functions included: a conservative closure). Each file is
# hashed by its syntax tree (``ast.dump``), so comments and formatting do not count as changes.


def notebook_source(path: str | Path) -> str:
    """The code cells of a notebook, joined, without IPython magics and shell lines (``%``, ``!``)."""
    return notebook_code(Path(path).read_text())


SAVING_CALLS = frozenset({"save_result", "save_dataset"})  # a step notebook writes its result with these


def _code_cells(text: str) -> list[str]:
    """The code cells of a notebook's JSON ``text``, each without IPython magics and shell lines."""
    cells = json.loads(text)["cells"]
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
               for c in cells if c.get("cell_type") == "code"]
    return ["\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
            for source in sources]


def notebook_code(text: str) -> str:
    """:func:`notebook_source` of a notebook's JSON ``text``."""
    return "\n".join(_code_cells(text))


def _saves(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return any(isinstance(n, ast.Call) and (getattr(n.func, "id", None) or getattr(n.func, "attr", None)) in SAVING_CALLS
               for n in ast.walk(tree))


def result_code(text: str) -> str:
    """The code of a notebook's JSON ``text`` that can change its stored result: its code cells up to
    and including the last one that saves it (:data:`SAVING_CALLS`). The cells after it run once the
    result is written (figures, printouts): they cannot change a stored number. A notebook that saves
    nothing counts whole."""
    cells = _code_cells(text)
    last = max((i for i, cell in enumerate(cells) if _saves(cell)), default=len(cells) - 1)
    return "\n".join(cells[:last + 1])


def imported_modules(source: str, package: str = "mimstudy") -> set[str]:
    """Modules of ``package`` that ``source`` imports, with ``from a import b`` also naming ``a.b``
    (``b`` may be a sub-module; names that are not modules are dropped when resolved to files)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == package)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == package:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if a.name != "*")
    return found


def module_files(module: str, package_dir: Path) -> list[Path]:
    """The files Python runs to import ``module`` from ``package_dir``: each enclosing package's
    ``__init__.py`` and the module itself (``[]`` when the last part names no module)."""
    parts = module.split(".")[1:]
    files = [package_dir / "__init__.py"]
    folder = package_dir
    for i, part in enumerate(parts):
        if (folder / part / "__init__.py").is_file():
            folder = folder / part
            files.append(folder / "__init__.py")
        elif i == len(parts) - 1 and (folder / f"{part}.py").is_file():
            files.append(folder / f"{part}.py")
        else:
            return files if i == len(parts) - 1 else []  # an attribute imported from a module
    return files


@lru_cache(maxsize=4096)
def _parsed(path: str, mtime_ns: int, size: int, package: str) -> tuple[str, frozenset[str]]:
    """(syntax digest, imported package modules) of a source file, cached while it is unchanged."""
    source = Path(path).read_text()
    return _syntax_digest(source), frozenset(imported_modules(source, package))


def _file_facts(path: Path, package: str) -> tuple[str, frozenset[str]]:
    stat = path.stat()
    return _parsed(str(path), stat.st_mtime_ns, stat.st_size, package)


def code_closure(source: str, package_dir: str | Path = PACKAGE_DIR) -> list[Path]:
    """Every source file of the package (at ``package_dir``) that running ``source`` may import,
    following imports transitively, sorted."""
    package_dir = Path(package_dir)
    seen: set[Path] = set()
    pending = list(imported_modules(source, package_dir.name))
    while pending:
        for path in module_files(pending.pop(), package_dir):
            if path not in seen and path.is_file():
                seen.add(path)
                pending.extend(_file_facts(path, package_dir.name)[1])
    return sorted(seen)


def _syntax_digest(source: str) -> str:
    return hashlib.sha256(ast.dump(ast.parse(source)).encode()).hexdigest()[:16]


def code_hashes(notebook: str, root: str | Path | None = None) -> dict[str, str]:
    """``{path relative to root: digest}`` for ``notebooks/<notebook>.ipynb`` (its code cells) and
    every package file it imports (:func:`code_closure`); ``{}`` when the notebook is not there (an
    installed package without the repository). ``root``: the repository (default :data:`CODE_ROOT`)."""
    root = Path(root or CODE_ROOT)
    path = root / "notebooks" / f"{notebook}.ipynb"
    if not path.is_file():
        return {}
    source = notebook_source(path)
    hashes = {path.relative_to(root).as_posix(): _syntax_digest(source)}
    for file in code_closure(source, root / PACKAGE_DIR.name):
        hashes[file.relative_to(root).as_posix()] = _file_facts(file, PACKAGE_DIR.name)[0]
    return hashes


def code_digest(hashes: dict[str, str]) -> str:
    """One digest for a whole :func:`code_hashes` mapping."""
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:16]


def code_changes(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    """Files whose code differs between two :func:`code_hashes` mappings (added, removed or edited)."""
    return sorted(f for f in set(recorded) | set(current) if recorded.get(f) != current.get(f))


def provenance_attrs(parameters: dict, preset: str, seed: int, notebook: str | None = None) -> dict[str, str | int]:
    """netCDF-safe attributes (strings and ints only) describing a run.

    With ``notebook``, the digests of the code it runs (:func:`code_hashes`) are recorded as
    ``code_hashes`` (JSON) and ``code_digest``: the runner compares them with the code of today.
    """
    commit, dirty = git_commit()
    code = {}
    if notebook:
        hashes = code_hashes(notebook)
        code = {"code_hashes": json.dumps(hashes, sort_keys=True), "code_digest": code_digest(hashes)}
    from mimstudy.numerics import cpu_facts

    return {
        **code,
        **cpu_facts(),
        "parameters": json.dumps(parameters, sort_keys=True),
        "preset": preset,
        "seed": int(seed),
        "git_commit": commit,
        "git_dirty": int(dirty),
        "package_versions": json.dumps(package_versions(), sort_keys=True),
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}",
        "hardware": hardware(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
