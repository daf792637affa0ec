"""What a user does and sees: a real server with its UI, a process work pool, `prefect deploy
--all`, a worker, `prefect deployment run jetx/progressive --watch` at the tiny preset, the run
looked at in a real browser (headless Chromium driven by Playwright), and `jetx serve`.

One server and one deployment run serve every test of this module.
"""

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import prefect_env  # noqa: F401  (isolates Prefect before it is imported)
import pytest
from prefect_server import LocalPrefect, stop

from jetx.data.synth import synthesize, write_csv

PROJECT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Chromium as root on a closed network: no sandbox, no GPU, no background connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TASKS = (
    "load_raw",
    "build_features",
    "train_stage-1",
    "evaluate_run",
    "audit_memory",
    "write_report",
)
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]  # make test-e2e; its own limit


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(1.0)
    raise TimeoutError(f"waited {timeout} s for {what}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    fast = {"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2"}
    with LocalPrefect(root / "home", PROJECT, root / "logs", ui=True, **fast) as prefect:
        prefect.start_server()
        yield prefect


@pytest.fixture(scope="module")
def deployed_run(server, tmp_path_factory):
    root = tmp_path_factory.mktemp("deployed")
    source, out = root / "history.csv", root / "out"
    write_csv(source, synthesize(3000, seed=5))
    pool = server.cli("work-pool", "create", "jetx-process", "--type", "process")
    assert pool.returncode == 0, pool.stdout + pool.stderr
    # prefect.yaml also holds progressive-k8s: its pool is created as the docs say (a pool needs
    # no cluster until a run is submitted to it), so `deploy --all` works as is.
    k8s_template = str(PROJECT / "deploy" / "k8s-base-job-template.json")
    k8s_pool = server.cli(
        "work-pool", "create", "jetx-k8s", "--type", "kubernetes",
        "--base-job-template", k8s_template,
    )  # fmt: skip
    assert k8s_pool.returncode == 0, k8s_pool.stdout + k8s_pool.stderr
    deploy = server.cli("--no-prompt", "deploy", "--all", env={"JETX_IMAGE": "jetx:test"})
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    server.spawn("worker", "worker", "start", "--pool", "jetx-process")
    run = server.cli(
        "deployment", "run", "jetx/progressive", "--watch",
        "--param", f"source={source}", "--param", f"out={out}",
        "--param", "preset=tiny", "--param", "stages=1",
        timeout=900,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", output).group(1)
    return {"deploy": deploy.stdout, "output": output, "out": out, "flow_run_id": flow_run_id}


def test_deploy_all_creates_every_deployment_with_the_weekly_schedule(server, deployed_run):
    for name in (
        "jetx/progressive",
        "jetx-audit/memory",
        "jetx/progressive-k8s",
        "jetx-walk-forward/walk-forward",
    ):
        assert name in deployed_run["deploy"], deployed_run["deploy"]
    inspect = server.cli("deployment", "inspect", "jetx/progressive")
    assert "'cron': '0 3 * * 1'" in inspect.stdout and "'active': False" in inspect.stdout
    found = server.api("POST", "/deployments/filter", {})
    limits = {d["name"]: (d["global_concurrency_limit"] or {}).get("limit") for d in found}
    for name in ("progressive", "memory", "progressive-k8s", "walk-forward"):
        assert limits[name] == 1, limits  # every deployment jetx creates: one run at a time


def test_a_deployment_run_completes_with_a_report(deployed_run):
    assert "Completed" in deployed_run["output"]
    reports = list(deployed_run["out"].glob("train/*/report/report.md"))
    assert len(reports) == 1 and reports[0].stat().st_size > 0


def test_the_production_deployment_takes_no_test_hook(server, deployed_run):
    (deployment,) = [
        d for d in server.api("POST", "/deployments/filter", {}) if d["name"] == "progressive"
    ]
    fields = deployment["parameter_openapi_schema"]["properties"]
    assert "inject_oom" not in fields
    # The tests' option to leave out the memory audit is no parameter the deployment sets, and
    # not in its form (the schema the UI draws it from).
    assert "skip_memory_audit" not in deployment["parameters"]
    assert "skip_memory_audit" not in fields
    assert {"source", "out", "preset", "variant", "stages", "budget_gib", "seed"} <= set(fields)


def test_the_run_logs_hold_the_library_lines_in_words(server, deployed_run):
    logs = server.api(
        "POST", "/logs/filter", {"logs": {"flow_run_id": {"any_": [deployed_run["flow_run_id"]]}}}
    )
    messages = [log["message"] for log in logs]
    loggers = {log["name"] for log in logs}
    assert {"jetx.data.ingest", "jetx.evaluation.run"} <= loggers  # the flow's own process
    text = "\n".join(messages)
    assert "jetx.training.precision: precision float32" in text  # a stage child's lines
    assert "stage 1 epoch 2/2" in text and "mem(allocator CPU:0)" in text
    assert not [m for m in messages if re.search(r": \{'|\[\{'", m)], "a raw dict in the logs"


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt install chromium)")
def test_the_run_in_the_prefect_ui_as_a_user_sees_it(server, deployed_run, tmp_path):
    from playwright.sync_api import sync_playwright

    base = server.api_url.removesuffix("/api")
    run_page = f"{base}/runs/flow-run/{deployed_run['flow_run_id']}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(run_page, wait_until="networkidle")
        page.get_by_text("Completed").first.wait_for()
        page.screenshot(path=tmp_path / "flow-run.png", full_page=True)
        page.get_by_text("Task Runs", exact=True).first.click()
        for name in TASKS:  # the task runs of the DAG, by name
            page.get_by_text(re.compile(rf"^{name}(-[0-9a-f]{{3}})?$")).first.wait_for()
        page.get_by_text("Artifacts", exact=True).first.click()
        for key in ("report", "metric-comparison", "memory-audit", "stage-1-progress"):
            page.get_by_text(key, exact=True).first.wait_for()
        links = page.locator("a[href*='/artifacts/artifact/']")
        artifacts = {
            links.nth(i).inner_text(): links.nth(i).get_attribute("href")
            for i in range(links.count())
        }
        report = _open(page, base, artifacts, "report", tmp_path / "report.png")
        assert page.get_by_role("heading", name=re.compile("^jetx report:")).count() == 1
        assert "Skill: proper scores against the constant forecasters" in report
        assert re.search(r"Stage 1:.*(no evidence of skill|skill)", report)
        images = page.evaluate(
            "() => Array.from(document.images).filter(i => i.alt.endsWith('.png'))"
            ".map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])"
        )
        names = [alt for alt, *_ in images]
        widths = page.evaluate(
            "() => [document.querySelector('h1').parentElement.getBoundingClientRect().width,"
            " ...Array.from(document.querySelectorAll('table'), t => t.scrollWidth)]"
        )
        assert len(widths) > 4 and max(widths[1:]) <= widths[0], widths  # no table overflows
        assert {"reliability.png", "training_curves.png", "peak_memory.png", "bankroll.png"} <= set(
            names
        )
        assert all(done and width > 0 and height > 0 for _, done, width, height in images), images
        comparison = _open(page, base, artifacts, "metric-comparison", tmp_path / "cmp.png")
        assert "stage 1" in comparison and "always bet" in comparison and "win rate" in comparison
        progress = _open(page, base, artifacts, "stage-1-progress", tmp_path / "progress.png")
        assert "100" in progress
        browser.close()


def _open(page, base: str, artifacts: dict, key: str, screenshot: Path) -> str:
    """Open an artifact's page, wait until it renders, save a screenshot; its text."""
    href = next(href for text, href in artifacts.items() if key in text.split("\n"))
    page.goto(base + href, wait_until="networkidle")
    page.wait_for_timeout(1000)
    page.screenshot(path=screenshot, full_page=True)
    return page.inner_text("body")


def test_serve_creates_the_deployment_and_its_scheduled_runs(server, tmp_path):
    command = [sys.executable, "-m", "flows.cli", "serve", "--name", "served"]
    command += ["--cron", "0 3 * * 1", "--source", str(tmp_path / "history.csv")]
    command += ["--out", str(tmp_path / "out"), "--preset", "tiny", "--stages", "1"]
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 (closed below)
    served = subprocess.Popen(
        command, cwd=PROJECT, env=server.env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:

        def deployment():
            assert served.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            found = server.api("POST", "/deployments/filter", {})
            return next((d for d in found if d["name"] == "served"), None)

        found = _wait(deployment, 180, "the served deployment")
        assert found["parameters"]["preset"] == "tiny"
        assert found["parameters"]["source"] == str(tmp_path / "history.csv")
        assert found["work_pool_name"] is None  # served from this process: no pool, no worker
        assert found["global_concurrency_limit"]["limit"] == 1  # one run at a time, queued
        assert found["concurrency_options"]["collision_strategy"] == "ENQUEUE"
        (schedule,) = found["schedules"]
        assert schedule["schedule"]["cron"] == "0 3 * * 1" and schedule["active"]

        def scheduled():
            runs = server.api(
                "POST",
                "/flow_runs/filter",
                {"flow_runs": {"deployment_id": {"any_": [found["id"]]}}},
            )
            return [r for r in runs if r["state_type"] == "SCHEDULED"]

        runs = _wait(scheduled, 120, "a scheduled run")
        assert "T03:00:00" in runs[0]["expected_start_time"]  # Monday 03:00 UTC
        assert runs[0]["parameters"]["preset"] == "tiny"
    finally:
        stop(served)
        log.close()
    assert served.returncode in (0, -signal.SIGTERM, -signal.SIGINT, 130)
