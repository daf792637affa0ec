"""Which code a computation runs: the project modules a module imports, and one digest of them.

A cache key or an output directory that names only a task's own lines (Prefect's TASK_SOURCE)
goes on serving old features or old weights after a feature kernel, a loss or a preset changed.
`code_digest` follows a module's imports statically (every `import` and `from ... import`, those
inside functions too, and the packages' `__init__` modules that importing runs) through the
project's own packages, and hashes the source of everything it reaches. Editing a feature kernel
changes the digest of the features and of everything that imports them; editing the report's
rendering changes the digest of nothing upstream of it.
"""

from __future__ import annotations

import ast
import hashlib
import threading
from functools import cache
from pathlib import Path

#: Top-level packages whose sources count as "the code": the library and its orchestration.
PROJECT_PACKAGES = ("jetx", "tasks", "flows")
_ROOT = Path(__file__).resolve().parents[1]
#: CPython 3.11's `ast.parse` is not safe in two threads at once (it can raise "AST constructor
#: recursion depth mismatch"): Prefect computes two tasks' cache keys in two threads, so every
#: parse here takes this lock.
_PARSE = threading.Lock()


def module_file(name: str) -> Path | None:
    """The source file of a project module or package, or None when it is not one."""
    if name.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = _ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(path: Path) -> set[str]:
    """Every module name an `import` or `from ... import` of a source file names, anywhere in it
    (a `from m import x` names both `m` and `m.x`, which is a module when x is one)."""
    source = path.read_bytes()
    with _PARSE:
        tree = ast.parse(source, filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _imports(name: str, path: Path) -> set[str]:
    """Project modules the imports of one source file run (with their parent packages)."""
    found = imported_names(path)
    named = found | {name}
    parents = {".".join(m.split(".")[:i]) for m in named for i in range(1, m.count(".") + 1)}
    return {m for m in found | parents if module_file(m) is not None}


@cache
def _closure_cached(name: str, stamp: tuple[tuple[str, int, int], ...]) -> tuple[str, ...]:
    seen: set[str] = set()
    pending = [name]
    while pending:
        current = pending.pop()
        if current in seen or (path := module_file(current)) is None:
            continue
        seen.add(current)
        pending.extend(_imports(current, path) - seen)
    return tuple(sorted(seen))


def _stamp() -> tuple[tuple[str, int, int], ...]:
    files = sorted(p for package in PROJECT_PACKAGES for p in (_ROOT / package).rglob("*.py"))
    return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)


def closure(name: str) -> tuple[str, ...]:
    """Every project module that importing `name` can run, `name` included, sorted."""
    return _closure_cached(name, _stamp())


def code_digest(*names: str) -> str:
    """sha256 over the path and source of every module in the closures of `names`."""
    digest = hashlib.sha256()
    for module in sorted({m for name in names for m in closure(name)}):
        path = module_file(module)
        digest.update(f"{module}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
