"""The house plan holds: jetx/ reads as the pipeline, and no module reaches ahead of its stage.

Stages, in the order data flows: data -> features -> model -> training -> evaluation -> cli.
The top-level modules (config, errors, io, layout, provenance, runtime) belong to every stage
and import none of them; so does `jetx.testing`, the test hooks that every stage consults at one
injection point (`jetx.testing.faults.active()`). A module may import its own stage and earlier
ones, never a later one (function-local imports included), and jetx/ never imports Prefect:
tasks/ and flows/ do. The import rules are import-linter's contracts in pyproject.toml, run here
on the code and on copies with a made-up violation; this module adds the grouping and names.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

JETX = Path(__file__).resolve().parents[1] / "jetx"
STAGES = ("data", "features", "model", "training", "evaluation", "serving", "cli")
#: Subpackages outside the pipeline's order, at the top level's stage 0.
TOP_LEVEL_PACKAGES = ("testing",)


def _module(path: Path) -> str:
    parts = path.relative_to(JETX.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _stage(module: str) -> int:
    """0 for the top level, else 1 + the index of its subpackage in STAGES."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in STAGES:
        return 1 + STAGES.index(parts[1])
    return len(STAGES) if module == "jetx.__main__" else 0


MODULES = sorted(_module(p) for p in JETX.rglob("*.py"))


def test_jetx_is_grouped_into_the_pipelines_subpackages():
    subpackages = {m.split(".")[1] for m in MODULES if m.count(".") >= 2}
    assert subpackages == set(STAGES) | set(TOP_LEVEL_PACKAGES)
    top = sorted(m for m in MODULES if m.count(".") == 1 and _stage(m) == 0)
    assert top == [
        "jetx.config",
        "jetx.errors",
        "jetx.io",
        "jetx.layout",
        "jetx.provenance",
        "jetx.readers",
        "jetx.runtime",
        "jetx.testing",
    ]


def test_no_two_modules_share_a_stem():
    # The command line is exempt: each subcommand's module is named after its command, which is
    # the library step it fronts (jetx.cli.ingest runs jetx.data.ingest).
    library = [m for m in MODULES if not m.startswith("jetx.cli") and m.count(".") >= 1]
    stems = [m.rsplit(".", 1)[-1] for m in library]
    shared = sorted({s for s in stems if stems.count(s) > 1})
    assert not shared, f"modules share a name: {shared}"
    roots = {s: re.sub(r"(ation|ion|ing|or|er|e|s)$", "", s) for s in stems}
    near = sorted(
        (a, b)
        for a in stems
        for b in stems
        if a != b and len(roots[a]) >= 5 and roots[b].startswith(roots[a])
    )
    assert not near, f"one name for two jobs: {near}"  # validate vs validation


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_hold():
    # pyproject.toml's [tool.importlinter]: flows > tasks > jetx, jetx's subpackages in the order
    # data flows (function-local imports included), and no Prefect in jetx/.
    done = _lint_imports(JETX.parent)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "3 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("jetx/data/series.py", "    from jetx.evaluation.scores import heads", "order data flows"),
        ("jetx/io.py", "    from jetx.features import registry", "order data flows"),
        ("jetx/training/loop.py", "    import prefect", "never imports Prefect"),
        ("tasks/data.py", "    from flows import progressive", "tasks wrap jetx"),
    ],
)
def test_the_contracts_see_a_violation(tmp_path, module, line, contract):
    # The same contracts on a copy of the code with one made-up import inside a function.
    for name in ("jetx", "tasks", "flows"):
        shutil.copytree(JETX.parent / name, tmp_path / name)
    shutil.copy(JETX.parent / "pyproject.toml", tmp_path)
    with (tmp_path / module).open("a") as f:
        f.write(f"\n\ndef _violation():\n{line}\n")
    done = _lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout[-3000:]
    broken = done.stdout.split("Broken contracts", 1)[1]
    assert contract in broken and "2 kept, 1 broken" in done.stdout


def test_importing_the_flows_loads_no_tensorflow():
    # The flow process configures TensorFlow (threads, allocator, quiet logs) before it imports
    # it; a module-level Keras import anywhere under the flows would print TensorFlow's start-up
    # lines on a user's first screen (caught once by tests/test_first_run.py, end to end).
    code = (
        "import sys, flows.cli, flows.progressive, flows.walk_forward, flows.audit\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=JETX.parent, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", done.stdout
