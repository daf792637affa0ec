"""A new user's first run: `make demo`'s command on a fresh, empty PREFECT_HOME, tiny preset.

Nothing of the test session's Prefect set-up is passed on (no start-up timeout, no API URL):
the flow process must bring what a first run needs itself. On a new PREFECT_HOME the ephemeral
server migrates a new database before it answers, which on 2 busy cores can take longer than
Prefect's default 20 s.
"""

import os
import subprocess
import sys

import pytest

from jetx.data.synth import synthesize, write_csv

pytestmark = [pytest.mark.e2e, pytest.mark.portable, pytest.mark.timeout(1800)]  # make test-e2e


def test_the_flow_completes_on_its_first_try_on_a_fresh_prefect_home(tmp_path):
    source = tmp_path / "history.csv"
    write_csv(source, synthesize(2000, seed=5))
    home = tmp_path / "new-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TF_CPP"))}
    env["PREFECT_HOME"] = str(home)
    command = [sys.executable, "-m", "flows.progressive", "--source", str(source)]
    command += ["--out", str(tmp_path / "out"), "--preset", "tiny", "--stages", "1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "Flow run 'jetx-tiny' - Finished in state Completed()" in output
    assert "Report: " in done.stdout
    # A clean first screen: no CUDA probing, no absl chatter, no telemetry error.
    for noise in ("cuInit", "absl::InitializeLog", "cuda drivers", "telemetry"):
        assert noise not in output, noise
    # What the user needs is there: the precision, the memory figure's source, the epochs.
    assert "precision float32" in output
    assert "mem(allocator CPU:0)" in output
    assert "stage 1 epoch 2/2" in output
