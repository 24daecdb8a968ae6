"""The definitions a notebook's run reaches: staleness at the grain of top-level definitions.

A result records the syntax digest of every package file its notebook imports, transitively
(:func:`mimstudy.provenance.code_hashes`). That closure is coarse: the one configuration module holds
every notebook's dataclass, so registering a downstream task there would stale every pre-training
result, though no pre-training ever runs that code. :func:`same_reach` decides, conservatively,
whether the edits since a result was made lie wholly outside what its notebook reaches:

* its notebook's code cells run whole;
* importing a module runs its package ``__init__`` files and every module-level statement that has
  effects: imports (which load their modules in turn), assignments whose value calls anything, any
  other statement (``if``, ``try``, a bare call), functions whose default values call anything, a
  module's ``__getattr__``, and definitions under a decorator outside :data:`PURE_DECORATORS`
  (``@register_model`` registers a model: a run reaches it by name through a registry, not through
  a reference);
* a definition (a function, a class, an assignment without a call) is reached when a reached
  statement names it, and brings in everything it names and imports, in its own and other modules;
* ``import mimstudy.x`` and ``from mimstudy import x`` (x a module) reach the whole of ``x``; a
  relative import, or a recorded file that git cannot give back as recorded, is not analysed: the
  result then stays stale, as the file-level rule says.

What cannot change a number does not count:

* docstrings (of functions, classes and modules) are left out of the syntax trees compared, and the
  syntax trees carry no comments, formatting or line numbers;
* a notebook counts only up to the cell that saves its result
  (:func:`mimstudy.provenance.result_code`): the figures drawn after it, and what they import, do not;
* a name a notebook imports counts only where its own statements use it (importing a module still
  runs, and counts, its statements with effects).

Two versions of the code are the same for a notebook when the set of (file, syntax tree) of the
statements it reaches is the same in both, and the notebook's own statements are the same in the
same order. The old version is read from git at the commit the result records, and each file
(the notebook too) is checked against the digest recorded for it.
"""

from __future__ import annotations

import ast
import copy
import subprocess
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mimstudy.provenance import PACKAGE_DIR, _syntax_digest, notebook_code, result_code

# Decorators that only wrap or describe what they decorate: a definition under them runs nothing at import.
PURE_DECORATORS = frozenset({
    "dataclass", "dataclasses.dataclass", "property", "classmethod", "staticmethod", "cached_property",
    "functools.cached_property", "lru_cache", "functools.lru_cache", "cache", "functools.cache",
    "contextmanager", "contextlib.contextmanager", "torch.no_grad", "torch.inference_mode",
    "torch.enable_grad", "torch.jit.ignore", "abstractmethod", "abc.abstractmethod", "wraps",
    "functools.wraps", "overload", "typing.overload",
})
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
DYNAMIC_HOOKS = ("__getattr__", "__dir__")
NOTEBOOK = "<notebook>"


class Unanalysable(Exception):
    """The code cannot be compared at the grain of definitions; the file-level rule decides."""


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _dump(node: ast.AST) -> str:
    """``ast.dump`` of ``node`` without its docstrings (nor those of the definitions inside it)."""
    if not any(isinstance(n, (*DEFINITIONS, ast.Module)) for n in ast.walk(node)):
        return ast.dump(node)
    node = copy.deepcopy(node)
    for n in ast.walk(node):
        if isinstance(n, (*DEFINITIONS, ast.Module)) and n.body and _is_docstring(n.body[0]):
            n.body = n.body[1:] or [ast.Pass()]
    return ast.dump(node)


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        return _dotted(node.func)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _runs_nothing_when_defined(stmt: ast.stmt) -> bool:
    """A definition whose decorators (its methods' too) are all pure and whose classes take no keywords."""
    for node in ast.walk(stmt):
        if isinstance(node, DEFINITIONS) and any(_dotted(d) not in PURE_DECORATORS for d in node.decorator_list):
            return False
        if isinstance(node, ast.ClassDef) and node.keywords:  # metaclass=..., registration hooks
            return False
    return True


def _has_effects(stmt: ast.stmt) -> bool:
    """Does the statement do anything on import beyond binding a name (imports: see :func:`_imports`)?"""
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return False
    if _is_docstring(stmt):
        return False  # a docstring
    if isinstance(stmt, DEFINITIONS):
        if stmt.name in DYNAMIC_HOOKS:  # a module's own __getattr__ answers names no statement binds
            return True
        defaults = [] if isinstance(stmt, ast.ClassDef) else [*stmt.args.defaults, *stmt.args.kw_defaults]
        calls = any(isinstance(n, ast.Call) for d in defaults if d is not None for n in ast.walk(d))
        return calls or not _runs_nothing_when_defined(stmt)  # a default value is computed on import
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        return stmt.value is not None and any(isinstance(n, ast.Call) for n in ast.walk(stmt.value))
    return True


def _bound_names(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, DEFINITIONS):
        return {stmt.name}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {a.asname or a.name.split(".")[0] for a in stmt.names}
    names = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    names.update(n.name for n in ast.walk(stmt) if isinstance(n, DEFINITIONS))
    names.update(a.asname or a.name.split(".")[0] for n in ast.walk(stmt)
                 if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names)
    return names


@dataclass
class _Module:
    path: str  # relative to the repository, or NOTEBOOK
    statements: list[ast.stmt]
    bindings: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def parse(cls, path: str, source: str) -> "_Module":
        module = cls(path, ast.parse(source).body)
        for i, stmt in enumerate(module.statements):
            for name in _bound_names(stmt):
                module.bindings.setdefault(name, []).append(i)
        return module


class CodeTree:
    """One version of the package's source: ``read(relative path) -> source or None``."""

    def __init__(self, read: Callable[[str], str | None], package: str = PACKAGE_DIR.name):
        self.read, self.package = read, package
        self._modules: dict[str, _Module | None] = {}
        self._files: dict[str, str | None] = {}

    def file_of(self, module: str) -> str | None:
        """The file (relative to the repository) that defines ``module``, or ``None`` (not a module)."""
        if module not in self._files:
            stem = "/".join(module.split("."))
            self._files[module] = None if module.split(".")[0] != self.package else next(
                (path for path in (f"{stem}/__init__.py", f"{stem}.py") if self.read(path) is not None), None)
        return self._files[module]

    def module(self, module: str) -> _Module | None:
        if module not in self._modules:
            path = self.file_of(module)
            self._modules[module] = None if path is None else _Module.parse(path, self.read(path))
        return self._modules[module]


class _Reach:
    """The statements a notebook reaches in one :class:`CodeTree`, as ``{(file, ast dump)}``."""

    def __init__(self, tree: CodeTree):
        self.tree = tree
        self.statements: set[tuple[str, str]] = set()
        self._reached: set[tuple[str, int]] = set()  # (module, statement index) whose names count
        self._loaded: set[str] = set()
        self._whole: set[str] = set()
        self._pending: deque[tuple[str, int]] = deque()

    def run(self, notebook: str) -> frozenset[tuple[str, str]]:
        tree = ast.parse(notebook)
        self.statements.add((NOTEBOOK, _dump(tree)))  # its statements in their order
        imported: dict[str, tuple[str, str]] = {}  # a name the notebook imports -> (module, name)
        for stmt in tree.body:  # imports load their modules; the names they bind count where used
            if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.module.split(".")[0] == self.tree.package:
                self.statements.add((NOTEBOOK, _dump(stmt)))
                for target in self._targets(NOTEBOOK, stmt):
                    self._load(target)
                imported.update({a.asname or a.name: (stmt.module, a.name) for a in stmt.names})
        for stmt in tree.body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.module.split(".")[0] == self.tree.package:
                continue
            self._reach(NOTEBOOK, None, stmt)
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name) and node.id in imported:
                    self._name(*imported[node.id])
        while self._pending:
            module, index = self._pending.popleft()
            if (module, index) not in self._reached:
                self._reached.add((module, index))
                self._reach(module, self.tree.module(module), self.tree.module(module).statements[index])
        return frozenset(self.statements)

    def _load(self, module: str) -> None:
        """Importing ``module``: its packages' ``__init__`` files and its statements with effects run;
        its imports load their modules (the names they bind count only where something uses them)."""
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name in self._loaded:
                continue
            self._loaded.add(name)
            parsed = self.tree.module(name)
            if parsed is None:
                continue
            for index, stmt in enumerate(parsed.statements):
                if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    self.statements.add((parsed.path, _dump(stmt)))
                    for target in self._targets(parsed.path, stmt):
                        self._load(target)
                elif _has_effects(stmt):
                    self._pending.append((name, index))

    def _targets(self, path: str, node: ast.Import | ast.ImportFrom) -> list[str]:
        """The package modules an import statement loads."""
        package = self.tree.package
        if isinstance(node, ast.ImportFrom):
            if node.level:
                raise Unanalysable(f"{path}: relative import of {node.module!r}")
            if not node.module or node.module.split(".")[0] != package:
                return []
            if any(a.name == "*" for a in node.names):
                raise Unanalysable(f"{path}: star import from {node.module!r}")
            subs = [f"{node.module}.{a.name}" for a in node.names if a.name != "*"]
            return [node.module] + [m for m in subs if self.tree.file_of(m) is not None]
        return [a.name for a in node.names if a.name.split(".")[0] == package]

    def _whole_module(self, module: str) -> None:
        if module in self._whole:
            return
        self._whole.add(module)
        self._load(module)
        parsed = self.tree.module(module)
        if parsed is not None:
            self._pending.extend((module, i) for i in range(len(parsed.statements)))

    def _name(self, module: str, name: str) -> None:
        """``name`` of ``module`` is used: the statements binding it."""
        self._load(module)
        parsed = self.tree.module(module)
        if parsed is None:
            return
        if name in parsed.bindings:
            self._pending.extend((module, i) for i in parsed.bindings[name])
        elif self.tree.file_of(f"{module}.{name}") is not None:
            self._whole_module(f"{module}.{name}")

    def _reach(self, module: str, parsed: _Module | None, stmt: ast.stmt) -> None:
        """A statement that runs, or a definition that is used: it and all it names and imports."""
        self.statements.add((parsed.path if parsed else NOTEBOOK, _dump(stmt)))
        for node in ast.walk(stmt):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self._import(parsed.path if parsed else NOTEBOOK, node)
            elif isinstance(node, ast.Name) and parsed is not None and node.id in parsed.bindings:
                self._name(module, node.id)

    def _import(self, path: str, node: ast.Import | ast.ImportFrom) -> None:
        for target in self._targets(path, node):
            self._load(target)
        if isinstance(node, ast.Import):  # attribute access on the module: all of it
            for target in self._targets(path, node):
                self._whole_module(target)
        elif node.module and node.module.split(".")[0] == self.tree.package:
            for alias in node.names:
                self._name(node.module, alias.name)


def reached_statements(notebook: str, tree: CodeTree) -> frozenset[tuple[str, str]]:
    """``{(file, ast dump)}`` of every statement that running ``notebook`` (source: the code that
    makes its result, :func:`mimstudy.provenance.result_code`) reaches in ``tree``, docstrings left out."""
    return _Reach(tree).run(notebook)


def _git_show(root: Path, commit: str, path: str) -> str | None:
    try:
        out = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def recorded_tree(recorded: dict[str, str], commit: str, root: Path) -> CodeTree:
    """The package as a result recorded it: the files of its closure, read from git at ``commit``,
    each checked against its recorded digest (a run from a dirty tree recorded other code)."""
    cache: dict[str, str | None] = {}

    def read(path: str) -> str | None:
        if path not in recorded:
            return None
        if path not in cache:
            source = _git_show(root, commit, path)
            if source is None or _syntax_digest(source) != recorded[path]:
                raise Unanalysable(f"{path} is not in git at {commit[:12]} as the result recorded it")
            cache[path] = source
        return cache[path]

    return CodeTree(read)


def current_tree(root: Path) -> CodeTree:
    def read(path: str) -> str | None:
        file = root / path
        return file.read_text() if file.is_file() else None

    return CodeTree(read)


def same_reach(notebook: str, recorded: dict[str, str], commit: str, root: str | Path) -> bool:
    """Does ``notebook`` (its name) reach the same statements in the code ``recorded`` (a result's
    :func:`~mimstudy.provenance.code_hashes`, made at git ``commit``) as in today's code at ``root``?

    ``False`` whenever that cannot be shown: the notebook's own cells changed, git lacks the commit,
    a file (the notebook included) differs from its recorded digest, or the code uses a construct this
    analysis does not follow."""
    root = Path(root)
    path = f"notebooks/{notebook}.ipynb"
    if not (root / path).is_file() or path not in recorded or not commit or commit == "unknown":
        return False
    old = _git_show(root, commit, path)
    try:
        if old is None or _syntax_digest(notebook_code(old)) != recorded[path]:
            return False
        return reached_statements(result_code(old), recorded_tree(recorded, commit, root)) == \
            reached_statements(result_code((root / path).read_text()), current_tree(root))
    except (Unanalysable, SyntaxError, ValueError, KeyError):
        return False
