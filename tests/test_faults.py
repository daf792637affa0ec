"""The test hooks' one injection point: None in production, one variable, retries never inject."""

import json
import os
import subprocess
import sys

import pytest

from jetx.errors import JetxInputError
from jetx.testing import faults
from jetx.testing.faults import FAULTS_ENV, Faults, active, retry_environment


def test_production_has_no_faults_and_loads_no_keras():
    # A fresh process without JETX_FAULTS: active() is None, and asking loaded no TensorFlow.
    code = (
        "import sys; from jetx.testing import faults; "
        "print(faults.active() is None, 'keras' in sys.modules, 'tensorflow' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != FAULTS_ENV}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "False"]


def test_the_variable_is_read_once_per_process():
    env = {**os.environ, **faults.environment(oom="1:2", step_delay=0.5)}
    code = (
        "import os; from jetx.testing import faults; first = faults.active(); "
        "os.environ.pop('JETX_FAULTS'); print(first.oom, first.step_delay, faults.active().oom)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1:2", "0.5", "1:2"]


def test_injected_turns_faults_on_for_the_block_only():
    before = active()
    with faults.injected(hold="/nonexistent/gate") as chosen:
        assert active() is chosen and json.loads(os.environ[FAULTS_ENV]) == {
            "hold": "/nonexistent/gate"
        }
    assert active() is before


def test_a_retry_never_injects_an_out_of_memory_error():
    env = {"PATH": "/bin", **faults.environment(oom="1:2", step_delay=0.1)}
    assert retry_environment(env, 1) == env
    again = retry_environment(env, 2)
    assert json.loads(again[FAULTS_ENV]) == {"step_delay": 0.1} and again["PATH"] == "/bin"
    assert retry_environment({"PATH": "/bin"}, 2) == {"PATH": "/bin"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("oom=1:2", "`JETX_FAULTS` must be a JSON object with keys among"),
        ('{"oom_at": "1:2"}', "`JETX_FAULTS` must be a JSON object with keys among"),
        ('{"oom": "1-2"}', "`JETX_FAULTS`'s `oom` must look like 'stage:update"),
        ('{"checkpoint_pause": "3"}', "`JETX_FAULTS`'s `checkpoint_pause` must look like 'k:sec"),
    ],
)
def test_a_malformed_variable_names_itself_and_what_came_in(text, message):
    with pytest.raises(JetxInputError, match="Received") as error:
        Faults.from_json(text)
    assert message in str(error.value)
