"""What a user does: a real server, a process work pool, `prefect deploy --all`, a worker, and
`prefect deployment run jetx/progressive --watch` with tiny parameters."""

from pathlib import Path

import prefect_env  # noqa: F401  (isolates Prefect before it is imported)
import pytest
from prefect_server import LocalPrefect

from jetx.data.synth import synthesize, write_csv

PROJECT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_deployment_run_of_jetx_progressive_completes_with_a_report(tmp_path):
    source = tmp_path / "history.csv"
    write_csv(source, synthesize(3000, seed=5))
    out = tmp_path / "out"
    with LocalPrefect(tmp_path / "home", PROJECT, tmp_path / "logs") as prefect:
        prefect.start_server()
        pool = prefect.cli("work-pool", "create", "jetx-process", "--type", "process")
        assert pool.returncode == 0, pool.stdout + pool.stderr
        # prefect.yaml also holds progressive-k8s: its pool is created as the README says (a
        # pool needs no cluster until a run is submitted to it), so `deploy --all` works as is.
        k8s_template = str(PROJECT / "deploy" / "k8s-base-job-template.json")
        k8s_pool = prefect.cli(
            "work-pool", "create", "jetx-k8s", "--type", "kubernetes",
            "--base-job-template", k8s_template,
        )  # fmt: skip
        assert k8s_pool.returncode == 0, k8s_pool.stdout + k8s_pool.stderr
        deploy = prefect.cli("--no-prompt", "deploy", "--all", env={"JETX_IMAGE": "jetx:test"})
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        for name in (
            "jetx/progressive",
            "jetx-audit/memory",
            "jetx/progressive-k8s",
            "jetx-walk-forward/walk-forward",
        ):
            assert name in deploy.stdout, deploy.stdout
        inspect = prefect.cli("deployment", "inspect", "jetx/progressive")
        assert "'cron': '0 3 * * 1'" in inspect.stdout and "'active': False" in inspect.stdout
        prefect.spawn("worker", "worker", "start", "--pool", "jetx-process")
        run = prefect.cli(
            "deployment",
            "run",
            "jetx/progressive",
            "--watch",
            "--param",
            f"source={source}",
            "--param",
            f"out={out}",
            "--param",
            "preset=tiny",
            "--param",
            "stages=1",
            timeout=900,
        )
        output = run.stdout + run.stderr
        assert run.returncode == 0, output[-3000:]
        assert "Completed" in output
    reports = list(out.glob("train/*/report/report.md"))
    assert len(reports) == 1 and reports[0].stat().st_size > 0
