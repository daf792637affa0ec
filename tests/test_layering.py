"""The house plan holds: jetx/ reads as the pipeline, and no module reaches ahead of its stage.

Stages, in the order data flows: data -> features -> model -> training -> evaluation -> cli.
The top-level modules (config, errors, io, layout, provenance, runtime) belong to every stage
and import none of them; so does `jetx.testing`, the test hooks that every stage consults at one
injection point (`jetx.testing.faults.active()`). A module may import its own stage and earlier
ones, never a later one (function-local imports included), and jetx/ never imports Prefect:
tasks/ and flows/ do.
"""

import re
from pathlib import Path

import pytest

from jetx.provenance import imported_names, module_file

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


@pytest.mark.parametrize("module", MODULES)
def test_no_module_imports_a_later_stage_or_prefect(module):
    names = imported_names(module_file(module))
    assert not any(n == "prefect" or n.startswith("prefect.") for n in names), names
    later = sorted(
        n for n in names if n.startswith("jetx.") and module_file(n) and _stage(n) > _stage(module)
    )
    assert not later, f"{module} (stage {_stage(module)}) imports {later}"


def test_the_layering_check_sees_a_violation(tmp_path, monkeypatch):
    # The same check on a made-up module: a data module that imports the evaluation.
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from jetx.evaluation.metrics import bankroll\n")
    names = imported_names(bad)
    assert "jetx.evaluation.metrics" in names
    assert _stage("jetx.evaluation.metrics") > _stage("jetx.data.ingest")
