"""Cluster orchestration (issue 8): the image, the Kubernetes variant and the Crashed-run remedy.

No Docker engine or Kubernetes cluster runs here, so the Dockerfile is linted with hadolint, the
Kubernetes job is rendered by prefect-kubernetes's own worker configuration (not submitted), and
the automation runs on a real local Prefect server, where a SIGKILLed flow-run process of the
`progressive` deployment must lead to a rerun with the same parameters.
"""

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import prefect_env  # noqa: F401  (isolates Prefect before it is imported)
import pytest
import yaml
from packaging.requirements import Requirement
from prefect_server import LocalPrefect

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]  # make test-e2e; its own limit
ROOT = Path(__file__).resolve().parents[1]
HADOLINT = str(Path(sys.executable).with_name("hadolint"))
TEMPLATE = ROOT / "deploy" / "k8s-base-job-template.json"
AUTOMATION = ROOT / "deploy" / "automation-rerun-crashed.yaml"
IMAGE = "registry.example/jetx:0.1.0"
LOCK = ROOT / "requirements.lock"
# What deploy/k8s-base-job-template.json adds to prefect-kubernetes's default template, and the
# defaults it sets (the default template has none: no limits, jobs kept forever).
ADDED_VARIABLES = {"gpu_limit", "runs_claim", "tmp_size_limit"}
DEFAULTS = {
    "cpu_request": "2",
    "cpu_limit": "8",
    "memory_request": "16Gi",
    "memory_limit": "32Gi",
    "finished_job_ttl": 86400,
}


def _deployment(name: str) -> dict:
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    return next(d for d in deployments if d["name"] == name)


def _hadolint(dockerfile: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [HADOLINT, "--failure-threshold", "style", "--format", "json", "-"],
        input=dockerfile,
        capture_output=True,
        text=True,
        check=False,
    )


def test_dockerfile_has_no_hadolint_findings():
    result = _hadolint((ROOT / "Dockerfile").read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout or "[]") == []


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ("python:3.11.13-slim-bookworm", "python:latest", "DL3007"),
        ("tini=0.19.0-1+b3", "tini", "DL3008"),
        ("USER 10001:10001", "USER root", "DL3002"),
    ],
)
def test_hadolint_catches_a_regression_of_the_dockerfile(old, new, rule):
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert old in dockerfile
    findings = json.loads(_hadolint(dockerfile.replace(old, new)).stdout)
    assert rule in {finding["code"] for finding in findings}


def test_dockerfile_installs_gpu_tensorflow_as_non_root_with_worker_cmd():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    pip = [line for line in lines if "pip install" in line]
    assert pip == [
        "RUN pip install --no-deps --require-hashes -r /tmp/requirements.lock \\",
        "RUN pip install --no-deps --no-build-isolation . \\",
    ]
    assert "COPY requirements.lock /tmp/requirements.lock" in lines
    assert [line for line in lines if line.startswith("USER")] == ["USER 10001:10001"]
    # The job template passes `prefect flow-run execute` as args: they must replace CMD only.
    assert 'ENTRYPOINT ["tini", "--"]' in lines
    cmd = json.loads(next(line for line in lines if line.startswith("CMD"))[4:])
    assert cmd[:3] == ["prefect", "worker", "start"]
    assert cmd[cmd.index("--pool") + 1] == _deployment("progressive-k8s")["work_pool"]["name"]


def test_dockerignore_keeps_what_the_image_copies_and_drops_local_state():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "runs", "tests", ".git", ".pytest_cache", ".hypothesis"} <= ignored
    copied = [
        source
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY")
        for source in line.split()[1:-1]
    ]
    assert copied, "the Dockerfile copies nothing"
    for source in copied:
        assert (ROOT / source).exists(), source
        assert source.rstrip("/") not in ignored, f"{source} is copied but .dockerignore drops it"


def _requirements(text: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (pinned version, sha256 hashes) of a pip requirements file with hashes."""
    entries, current = {}, None
    for line in text.replace("\\\n", " ").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *options = line.split()
        name, _, version = spec.partition("==")
        current = re.sub(r"\[.*\]", "", name).lower().replace("_", "-")
        hashes = [o.removeprefix("--hash=sha256:") for o in options if o.startswith("--hash=")]
        entries[current] = (version, hashes)
    return entries


def test_the_image_lock_pins_and_hashes_every_package_the_project_needs():
    locked = _requirements(LOCK.read_text())
    assert len(locked) > 100  # TensorFlow's CUDA wheels and Prefect's closure
    for name, (version, hashes) in locked.items():
        assert re.fullmatch(r"\d+(\.\w+)*", version), (name, version)
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in map(Requirement, project):
        name = requirement.name.lower().replace("_", "-")
        assert name in locked, name
        assert requirement.specifier.contains(locked[name][0]), (requirement, locked[name][0])
    for name in ("tensorflow", "prefect-kubernetes", "setuptools", "nvidia-cudnn-cu12"):
        assert name in locked, name
    assert locked["tensorflow"][0].startswith("2.21.")


def _without_additions(template: dict) -> dict:
    """The template with deploy/'s additions taken out, to compare with the default."""
    template = json.loads(json.dumps(template))
    for name in ADDED_VARIABLES:
        del template["variables"]["properties"][name]
    for name in DEFAULTS:
        template["variables"]["properties"][name]["default"] = None
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    del pod["volumes"], pod["securityContext"], pod["automountServiceAccountToken"]
    container = pod["containers"][0]
    del container["volumeMounts"], container["resources"]["limits"]["nvidia.com/gpu"]
    del container["securityContext"]
    container["env"] = "{{ env }}"  # the API key from a Secret, in place of the placeholder
    return template


def test_job_template_is_hardened_as_a_security_review_expects():
    template = json.loads(TEMPLATE.read_text())
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    # A read-only root file system: /tmp is the one scratch space besides the runs volume.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "{{ tmp_size_limit }}"}} in pod["volumes"]
    assert "MPLCONFIGDIR=/tmp/matplotlib" in (ROOT / "Dockerfile").read_text()
    properties = template["variables"]["properties"]
    assert {name: properties[name]["default"] for name in DEFAULTS} == DEFAULTS
    job = template["job_configuration"]["job_manifest"]["spec"]
    assert job["ttlSecondsAfterFinished"] == "{{ finished_job_ttl }}"


def test_job_template_is_the_installed_default_plus_gpu_volume_and_user():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("prefect"))]
        + ["work-pool", "get-default-base-job-template", "--type", "kubernetes"],
        capture_output=True,
        text=True,
        check=True,
    )
    default = json.loads(result.stdout)
    ours = json.loads(TEMPLATE.read_text())
    assert _without_additions(ours) == default
    job_variables = _deployment("progressive-k8s")["work_pool"]["job_variables"]
    assert set(job_variables) - ADDED_VARIABLES <= set(default["variables"]["properties"])
    assert set(job_variables) <= set(ours["variables"]["properties"])
    assert {"image", "memory_limit", "memory_request", "gpu_limit", "env"} <= set(job_variables)


def test_process_pool_deployment_stays_the_default_and_the_variant_runs_the_same_flow():
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    assert deployments[0]["name"] == "progressive"
    assert deployments[0]["work_pool"]["name"] == "jetx-process"
    k8s = _deployment("progressive-k8s")
    assert k8s["entrypoint"] == deployments[0]["entrypoint"]
    assert set(k8s["parameters"]) == set(deployments[0]["parameters"])


# --- against a real local Prefect server ---------------------------------------------------------


def _api(
    prefect: LocalPrefect, path: str, body: dict | None = None, method: str | None = None
) -> dict | list | None:
    """Call the server's REST API (GET, or POST when there is a body) and decode its answer.

    A busy SQLite-backed server answers 503 now and then: such a call is tried again, 5 times.
    """
    request = urllib.request.Request(
        prefect.api_url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method=method or ("GET" if body is None else "POST"),
    )
    for attempt in range(5):
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = response.read()
            return json.loads(answer) if answer else None
        except urllib.error.HTTPError as error:
            if error.code != 503 or attempt == 4:
                raise
            time.sleep(1)


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def prefect(tmp_path_factory):
    """A server with both pools, both progressive deployments and the automation."""
    tmp = tmp_path_factory.mktemp("cluster")
    with LocalPrefect(tmp / "home", ROOT, tmp / "logs") as local:
        local.env.update(JETX_IMAGE=IMAGE, COLUMNS="250", PREFECT_WORKER_QUERY_SECONDS="2")
        local.start_server()
        _ok(local.cli("work-pool", "create", "jetx-process", "--type", "process"))
        _ok(
            local.cli(
                *("work-pool", "create", "jetx-k8s", "--type", "kubernetes"),
                *("--base-job-template", str(TEMPLATE)),
            )
        )
        _ok(
            local.cli("--no-prompt", "deploy", "--name", "progressive", "--name", "progressive-k8s")
        )
        _ok(local.cli("automation", "create", "--from-file", str(AUTOMATION)))
        local.tmp = tmp
        yield local


def test_k8s_deployment_renders_a_gpu_job_from_the_pool_template(prefect):
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    deployment = _api(prefect, "/deployments/name/jetx/progressive-k8s")
    pool = _api(prefect, "/work_pools/jetx-k8s")
    assert deployment["job_variables"]["image"] == IMAGE  # {{ $JETX_IMAGE }} was filled in
    with temporary_settings({PREFECT_API_URL: prefect.api_url}):
        job = asyncio.run(
            KubernetesWorkerJobConfiguration.from_template_and_values(
                pool["base_job_template"], deployment["job_variables"]
            )
        )
    pod = job.job_manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == IMAGE
    assert container["resources"]["limits"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": 1}
    assert container["resources"]["requests"] == {"cpu": "4", "memory": "24Gi"}
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "jetx-runs"
    assert container["volumeMounts"][0]["mountPath"] == "/opt/jetx/runs"
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert job.job_manifest["spec"]["ttlSecondsAfterFinished"] == 86400
    assert job.namespace == "jetx"
    assert job.env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    pull = deployment["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]
    assert pull["directory"] == "/opt/jetx"


def test_training_deployments_run_one_at_a_time(prefect):
    for name in ("progressive", "progressive-k8s"):
        deployment = _api(prefect, f"/deployments/name/jetx/{name}")
        assert deployment["global_concurrency_limit"]["limit"] == 1, name
        assert deployment["concurrency_options"]["collision_strategy"] == "ENQUEUE", name


def test_automation_is_listed_with_crashed_trigger_and_rerun_action(prefect):
    assert "jetx-rerun-crashed" in _ok(prefect.cli("automation", "ls"))
    (automation,) = json.loads(
        _ok(prefect.cli("automation", "inspect", "jetx-rerun-crashed", "--json"))
    )
    trigger, (action,) = automation["trigger"], automation["actions"]
    assert automation["enabled"] is True
    assert (trigger["posture"], trigger["expect"]) == ("Reactive", ["prefect.flow-run.Crashed"])
    assert {"prefect.resource.role": "flow", "prefect.resource.name": "jetx"} in trigger[
        "match_related"
    ]
    assert (trigger["threshold"], trigger["within"]) == (1, 3600.0)
    assert trigger["for_each"] == ["related:deployment:prefect.resource.id"]
    assert (action["type"], action["source"]) == ("run-deployment", "inferred")


def _flow_run_pids(flow_run_id: str) -> list[int]:
    """Processes that carry this flow run's id in their environment (the run and its children)."""
    marker = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
    return pids


def _wait(what: str, probe, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(1)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def test_sigkilled_run_is_crashed_and_rerun_with_same_parameters(prefect):
    deployment = _api(prefect, "/deployments/name/jetx/progressive")
    out = prefect.tmp / "runs"
    parameters = {"out": str(out), "preset": "tiny", "stages": 1, "seed": 7}
    crashed = _api(
        prefect, f"/deployments/{deployment['id']}/create_flow_run", {"parameters": parameters}
    )
    prefect.spawn("worker", "worker", "start", "--pool", "jetx-process")
    pids = _wait(
        "the flow-run process",
        lambda: (
            _api(prefect, f"/flow_runs/{crashed['id']}")["state_type"] == "RUNNING"
            and _flow_run_pids(crashed["id"])
        ),
    )
    # No worker may start the rerun: it would train for real. Pausing the pool keeps it Scheduled.
    _api(prefect, "/work_pools/jetx-process", {"is_paused": True}, method="PATCH")
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer does
    state = _wait(
        "the Crashed state",
        lambda: (
            (run := _api(prefect, f"/flow_runs/{crashed['id']}"))["state_type"] == "CRASHED"
            and run["state"]
        ),
    )
    assert "SIGKILL" in state["message"]
    runs_filter = {"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}}
    (rerun,) = _wait(
        "the automation's rerun",
        lambda: [
            run
            for run in _api(prefect, "/flow_runs/filter", runs_filter)
            if run["id"] != crashed["id"]
        ],
        timeout=120,
    )
    assert rerun["parameters"] == crashed["parameters"]
    assert rerun["parameters"]["out"] == str(out)
    assert rerun["state_type"] == "SCHEDULED"
    assert (rerun["created_by"]["type"], rerun["created_by"]["display_value"]) == (
        "AUTOMATION",
        "jetx-rerun-crashed",
    )
    shutil.rmtree(out, ignore_errors=True)

    # Crash-loop limit: the rerun crashing within the hour is not rerun, while a crash of another
    # deployment is (one window per deployment). Its rerun shows the later event was processed.
    _crash(prefect, rerun["id"])
    k8s = _api(prefect, "/deployments/name/jetx/progressive-k8s")
    other = _api(prefect, f"/deployments/{k8s['id']}/create_flow_run", {"parameters": {"seed": 3}})
    _crash(prefect, other["id"])
    k8s_filter = {"flow_runs": {"deployment_id": {"any_": [k8s["id"]]}}}
    (other_rerun,) = _wait(
        "the rerun of the other deployment",
        lambda: [
            r for r in _api(prefect, "/flow_runs/filter", k8s_filter) if r["id"] != other["id"]
        ],
        timeout=120,
    )
    assert other_rerun["parameters"]["seed"] == 3
    # Actions run apart from triggers: a rerun, had there been one, shows within about 3 s.
    for _ in range(10):
        assert len(_api(prefect, "/flow_runs/filter", runs_filter)) == 2
        time.sleep(1)


def _crash(prefect: LocalPrefect, flow_run_id: str) -> None:
    """Force a flow run into Crashed through the API (the server emits the same event)."""
    answer = _api(
        prefect,
        f"/flow_runs/{flow_run_id}/set_state",
        {"state": {"type": "CRASHED", "name": "Crashed"}, "force": True},
    )
    assert answer["status"] == "ACCEPT", answer
