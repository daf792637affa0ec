"""Cache keys that see the library, tested on a copy of the package that the test edits.

The flow (tiny preset, one stage) runs four times in fresh processes against one real Prefect
server, from a copy of jetx/, tasks/ and flows/:

1. first run: every task computes;
2. unchanged rerun: every cached task is a cache hit (the report, which publishes the run's
   artifacts, runs again, and so does the data task, which is never cached: it reads the
   source and names its output by what it read);
3. after an edit of the report's rendering: the report changes, nothing is retrained;
4. after an edit of a feature kernel: the features are built again into a new directory, and
   everything after them (training into a new run directory, evaluation) runs again, while the
   ingest, which does not run feature code, writes nothing new.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import prefect_env  # noqa: F401  (isolates Prefect before it is imported)
import pytest
from prefect_server import LocalPrefect

from jetx.data.synth import synthesize, write_csv

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]  # make test-e2e; its own limit
ROOT = Path(__file__).resolve().parents[1]
CACHED = ("build_features", "train_stage-1", "evaluate_run", "measure_memory")


def _states(output: str) -> dict[str, str]:
    """Task name (without Prefect's run suffix) -> the state it finished in."""
    found = re.findall(r"Task run '([\w-]+?)(?:-[0-9a-f]{3})?' - Finished in state (\w+)", output)
    return dict(found)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    root = tmp_path_factory.mktemp("package")
    for name in ("jetx", "tasks", "flows"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_keys_follow_the_code_that_runs(package, tmp_path):
    source = tmp_path / "history.csv"
    write_csv(source, synthesize(2000, seed=7))
    out = tmp_path / "out"
    with LocalPrefect(tmp_path / "home", package, tmp_path / "logs") as prefect:
        prefect.start_server()
        env = {**prefect.env, "PYTHONPATH": str(package)}

        def run() -> dict[str, str]:
            command = [sys.executable, "-m", "flows.progressive", "--source", str(source)]
            command += ["--out", str(out), "--preset", "tiny", "--stages", "1"]
            done = subprocess.run(
                command, cwd=package, env=env, capture_output=True, text=True, timeout=900
            )
            output = done.stdout + done.stderr
            assert done.returncode == 0, output[-3000:]
            return _states(output)

        first = run()
        assert {first[name] for name in CACHED} == {"Completed"}, first
        assert first["load_raw"] == "Completed"

        unchanged = run()
        assert {unchanged[name] for name in CACHED} == {"Cached"}, unchanged
        assert unchanged["write_report"] == unchanged["load_raw"] == "Completed"

        report_code = package / "jetx" / "evaluation" / "report" / "markdown.py"
        edited = report_code.read_text().replace("# jetx report:", "# jetx report (edited):")
        assert edited != report_code.read_text()
        report_code.write_text(edited)
        after_report = run()
        assert {after_report[name] for name in CACHED} == {"Cached"}, after_report
        (report,) = out.glob("train/*/report/report.md")
        assert report.read_text().startswith("# jetx report (edited):")  # the copy ran

        kernel = package / "jetx" / "features" / "trend.py"
        kernel.write_text(kernel.read_text() + "\n_EDITED = True  # a line added to a kernel\n")
        after_kernel = run()
        assert len(list((out / "data").iterdir())) == 1, "the same data: one data directory"
        for name in ("build_features", "train_stage-1", "evaluate_run"):
            assert after_kernel[name] == "Completed", (name, after_kernel)
    # The new features and the new run went to new directories; the old ones are intact.
    assert len(list((out / "features").iterdir())) == 2
    assert len(list((out / "train").iterdir())) == 2
