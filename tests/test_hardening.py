"""Issue 25's file-system, bundle and deployment hardening, each proved on real files and real
processes: one `jetx run` per out dir, `--out` that must be a directory, retention under the
models lock, a bundle path that never goes missing while it is republished, files fsynced
before they are published, a concurrency limit on every deployment, and the image and Job
template that keep a user's data and the Prefect API key where they belong.
"""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import prefect_env  # noqa: F401  (isolates Prefect before it is imported)
import pytest
import yaml

from jetx.errors import DirectoryInUseError
from jetx.layout import ModelsDir, Workspace
from jetx.serving.bundle import HASHED, _publish, export_bundle
from jetx.serving.retention import retain

ROOT = Path(__file__).resolve().parents[1]


def _holder(code: str, ready: Path) -> subprocess.Popen:
    """A child process that runs `code` (which takes a lock), writes `ready`, then sleeps."""
    script = textwrap.dedent(code) + f"\nopen({str(ready)!r}, 'w').close()\nimport time\n"
    script += "time.sleep(120)\n"
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert child.poll() is None and time.monotonic() < deadline, "the holder never started"
        time.sleep(0.05)
    return child


def test_a_second_jetx_run_on_the_same_out_is_refused_naming_the_run_in_progress(tmp_path):
    out = tmp_path / "out"
    first = _holder(
        f"from jetx.layout import Workspace\nlock = Workspace({str(out)!r}).run_lock()\n"
        "lock.__enter__()",
        tmp_path / "ready",
    )  # holds the lock `jetx run` takes for its whole run, as a first `jetx run` does
    try:
        second = subprocess.run(
            [sys.executable, "-m", "flows.cli", "run", "--out", str(out), "--preset", "tiny"],
            capture_output=True, text=True, cwd=ROOT, timeout=120,
        )  # fmt: skip
    finally:
        first.kill()
        first.wait()
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 2 and len(lines) == 1, second.stderr[-2000:]
    assert f"OUT_DIR {out} is in use by pid {first.pid}" in lines[0]
    assert not (out / "data").exists()  # nothing of the refused run was written


@pytest.mark.parametrize("command", [["ingest", "data/sample.csv"], ["export", "runs/x"]])
def test_an_empty_out_is_refused_with_exit_2_and_nothing_written(tmp_path, command):
    done = subprocess.run(
        [sys.executable, "-m", "jetx", *command, "--out", ""],
        capture_output=True, text=True, cwd=tmp_path if command[0] != "ingest" else ROOT,
    )  # fmt: skip
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()  # one line, no usage block
    assert "argument --out: `out` must be a directory path; it is empty. Received: out=''" in line
    assert not (ROOT / "manifest.json").exists() and list(tmp_path.iterdir()) == []


def test_the_flow_refuses_an_empty_out_or_a_file_as_its_out_dir(tmp_path):
    from prefect.exceptions import ParameterTypeError

    from flows.progressive import progressive

    a_file = tmp_path / "history.csv"
    a_file.write_text("id,value\n")
    for out in ("", "  ", str(a_file)):
        with pytest.raises(ParameterTypeError, match="`out` must be a directory path"):
            progressive.validate_parameters({"out": out})
    assert progressive.validate_parameters({"out": str(tmp_path)})["out"] == tmp_path


def test_retention_refuses_while_another_process_holds_the_models_lock(tmp_path):
    workspace = Workspace(tmp_path / "out")
    holder = _holder(
        f"from jetx.layout import ModelsDir\nlock = ModelsDir({str(workspace.models.path)!r})"
        ".lock()\nlock.__enter__()",
        tmp_path / "ready",
    )  # a `jetx promote` deciding, say
    try:
        with pytest.raises(DirectoryInUseError, match=f"in use by pid {holder.pid}"):
            retain(workspace, keep_runs=1, wait=0.2)
    finally:
        holder.kill()
        holder.wait()
    assert retain(workspace, keep_runs=1, wait=0)["bundles_removed"] == []  # free again


def test_the_bundle_path_never_goes_missing_while_it_is_republished(tmp_path):
    out = tmp_path / "models" / "run"
    out.mkdir(parents=True)
    (out / "bundle.json").write_text("0")
    stop = tmp_path / "stop"
    watcher = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import os, json
            looks = missing = 0
            while not os.path.exists({str(stop)!r}) or looks < 1000:
                looks += 1
                missing += not os.path.isfile({str(out / "bundle.json")!r})
            print(json.dumps({{"looks": looks, "missing": missing}}))
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    exchanged = 0
    for k in range(300):
        staging = tmp_path / "models" / f".jetx-tmp-staging-run-{k}"
        staging.mkdir()
        (staging / "bundle.json").write_text(str(k))
        _publish(staging, out)
        if staging.exists():  # the old bundle, after an exchange
            exchanged += 1
            for path in staging.iterdir():
                path.unlink()
            staging.rmdir()
    stop.touch()
    seen = json.loads(watcher.communicate(timeout=60)[0])
    assert seen["looks"] >= 1000 and seen["missing"] == 0, seen
    assert (out / "bundle.json").read_text() == "299"
    assert exchanged == 300  # renameat2(RENAME_EXCHANGE) each time, not the two-rename fallback


def test_every_bundle_file_is_fsynced_before_the_bundle_is_published(
    tiny_run, tmp_path, monkeypatch
):
    synced = []
    real = os.fsync

    def counting(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    out = tmp_path / "models" / "run"
    export_bundle(tiny_run, out)
    names = {Path(p).name for p in synced}
    assert set(HASHED) <= names, synced
    assert any(n.startswith(".jetx-tmp-bundle.json.") for n in names)  # before its rename
    assert str(out.parent) in synced  # the rename itself, flushed in the models dir


def test_every_deployment_jetx_creates_runs_one_at_a_time():
    import argparse

    from flows.cli import ONE_AT_A_TIME, served_deployment
    from flows.options import add_flow_arguments

    for deployment in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]:
        limit = deployment.get("concurrency_limit")
        assert limit == {"limit": 1, "collision_strategy": "ENQUEUE"}, deployment["name"]
    parser = argparse.ArgumentParser()
    add_flow_arguments(parser)
    args = parser.parse_args(["--out", "runs/x"])
    args.name, args.cron = "served", "0 3 * * 1"
    served = served_deployment(args)
    assert served.concurrency_limit == ONE_AT_A_TIME == 1
    assert served.concurrency_options.collision_strategy == "ENQUEUE"


def test_the_image_leaves_out_real_data_and_the_job_takes_the_api_key_from_a_secret():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert "data/real" in ignored and "COPY data ./data" in (ROOT / "Dockerfile").read_text()
    template = json.loads((ROOT / "deploy" / "k8s-base-job-template.json").read_text())
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    (key,) = [e for e in pod["containers"][0]["env"] if e["name"] == "PREFECT_API_KEY"]
    assert key == {
        "name": "PREFECT_API_KEY",
        "valueFrom": {
            "secretKeyRef": {"name": "jetx-prefect-api-key", "key": "api-key", "optional": True}
        },
    }
    assert "value" not in key  # never the key itself in the template
    assert ModelsDir.LATEST == "latest"  # the pointer name docs/operations.md tells users


def test_the_rendered_job_takes_the_api_key_from_the_secret(tmp_path):
    """Rendered by prefect-kubernetes's own code, as its worker renders a flow run's Job."""
    from prefect.utilities.templating import apply_values
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    template = json.loads((ROOT / "deploy" / "k8s-base-job-template.json").read_text())
    values = {k: v.get("default") for k, v in template["variables"]["properties"].items()}
    values.update(env={"TF_FORCE_GPU_ALLOW_GROWTH": "true"}, labels={}, annotations={})
    job = KubernetesWorkerJobConfiguration(**apply_values(template["job_configuration"], values))
    job._populate_env_in_manifest()
    env = job.job_manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "TF_FORCE_GPU_ALLOW_GROWTH", "value": "true"} in env
    (key,) = [e for e in env if e["name"] == "PREFECT_API_KEY"]
    assert key["valueFrom"]["secretKeyRef"]["name"] == "jetx-prefect-api-key"
