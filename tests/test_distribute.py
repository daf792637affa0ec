"""tf.distribute: mirrored on 2 CPU devices equals one device; OOM recovery; resume after SIGKILL.

The CPU can be split into logical devices only before TensorFlow starts, so every run under
"mirrored" is a child process (tests/distribute_worker.py, or `jetx train` with
JETX_CPU_DEVICES=2); this process keeps its single CPU device.
"""

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from test_resume_kill import (
    TIMEOUT,
    _assert_same,
    _finish,
    _kill,
    _sequence,
    _start,
    _variables,
    _wait_until,
)

from jetx.config import STRATEGIES
from jetx.errors import JetxInputError
from jetx.layout import RunDir
from jetx.testing import faults
from jetx.training.checkpoint import latest_checkpoint, load_state
from jetx.training.distribute import (
    CPU_DEVICES_ENV,
    check_strategy,
    check_tf_config,
    get_distribution,
    split_cpu,
)

WORKER = Path(__file__).with_name("distribute_worker.py")
MIRRORED = ("--strategy", "mirrored")
TWO_CPUS = {CPU_DEVICES_ENV: "2"}


@pytest.fixture(scope="module")
def features(tiny_features):
    return tiny_features  # the session's (tests/conftest.py); the runs only read it


@pytest.mark.e2e  # two TensorFlow runs in one child: 60-90 s
def test_mirrored_with_dropout_on_two_cpu_devices_equals_one_device(features, tmp_path):
    # Dropout on: each replica keeps its rows of the global batch's mask (distribute_worker.py).
    done = subprocess.run(
        [sys.executable, str(WORKER), str(features), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == {"none": 1, "mirrored": 2}
    assert result["updates"] == {"none": 4, "mirrored": 4}
    assert result["normalization"] == {"none": "batch", "mirrored": "batch"}  # in result.json
    assert result["initial_diff"] == 0.0  # same initial weights: the comparison is fair
    assert result["moved"] > 1e-3  # the 4 updates did move the weights
    assert result["final_diff"] < 1e-5  # weights, and the dropout seed states: the same draws
    assert result["replica_masks_differ"] and result["replica_masks_are_one_devices"]
    assert 0.3 < result["kept"] < 0.7  # a real mask at rate 0.5
    assert result["val_loss"]["mirrored"] == pytest.approx(result["val_loss"]["none"], rel=1e-5)
    assert result["oom"] == [4, 16, 4, 4]  # out of memory at update 1: 8 -> 4, 2 per replica
    assert result["odd_error"] == (
        "`micro_batch` is global and must be divisible by the 2 replicas of strategy "
        "'mirrored'. Received: micro_batch=3"
    )


@pytest.mark.e2e  # a reference and a killed run: 60-70 s; the fast tier kills one run
def test_kill_under_mirrored_resumes_exactly(features, tmp_path):
    reference_dir = tmp_path / "reference"
    reference = _start(features, reference_dir, tmp_path / "reference.txt", MIRRORED, **TWO_CPUS)
    run_dir, log = tmp_path / "run", tmp_path / "log.txt"
    process = _start(
        features, run_dir, log, MIRRORED, **TWO_CPUS, **faults.environment(step_delay=0.05)
    )
    _wait_until(lambda: _sequence(run_dir) >= 3, process)
    _kill(process)
    killed_at = load_state(latest_checkpoint(RunDir(run_dir).stage(1).path))
    assert not killed_at.progress.finished and killed_at.progress.updates >= 2
    resumed = _finish(features, run_dir, log, MIRRORED, **TWO_CPUS)
    assert reference.wait(TIMEOUT) == 0, (tmp_path / "reference.txt").read_text()[-3000:]
    _assert_same(resumed, _variables(reference_dir))
    assert log.read_text().count("resuming from ckpt-") == 1
    result = json.loads((RunDir(run_dir).stage(1).path / "result.json").read_text())
    assert (result["strategy"], result["replicas"]) == ("mirrored", 2)


@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_multi_worker_from_tf_config_two_local_processes(features, tmp_path):
    """Two `jetx train` workers on localhost train one model; worker 1 writes RUN_DIR/worker1."""
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    run_dir, processes = tmp_path / "run", []
    for index in range(2):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        log = tmp_path / f"worker{index}.txt"
        extra = ("--strategy", "multi-worker", "--epochs", "1")
        processes.append(_start(features, run_dir, log, extra, TF_CONFIG=config))
    for index, process in enumerate(processes):
        assert process.wait(TIMEOUT) == 0, (tmp_path / f"worker{index}.txt").read_text()[-3000:]
    chief, worker = (
        json.loads((d / "stage1/result.json").read_text()) for d in (run_dir, run_dir / "worker1")
    )
    assert (chief["strategy"], chief["replicas"], chief["updates"]) == ("multi-worker", 2, 4)
    _assert_same(_variables(run_dir / "worker1"), _variables(run_dir))
    assert chief["best_val_metrics"] == worker["best_val_metrics"]


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_none_is_the_default_and_leaves_the_dataset_alone():
    distribution = get_distribution()
    assert (distribution.name, distribution.replicas, distribution.is_chief) == ("none", 1, True)
    dataset = tf.data.Dataset.range(4).batch(2)
    assert distribution.distribute(lambda: dataset, 2) is dataset
    assert distribution.worker_dir(Path("run")) == Path("run")


def test_unknown_strategy_is_refused():
    assert check_strategy("mirrored") == "mirrored" and "multi-worker" in STRATEGIES
    with pytest.raises(JetxInputError, match=r"one of \['none', 'mirrored', 'multi-worker'\]"):
        get_distribution("horovod")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "needs the TF_CONFIG environment variable"),
        ("{not json", "TF_CONFIG must be JSON like .*JSONDecodeError"),
        ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG must be JSON like .*KeyError: 'task'"),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
            "task worker:1 is not in its cluster",
        ),
    ],
)
def test_bad_tf_config_is_refused(text, message):
    with pytest.raises(JetxInputError, match=message):
        check_tf_config(text)


def test_good_tf_config_is_parsed():
    text = '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}'
    assert check_tf_config(text)["task"]["index"] == 1


def test_cpu_split_after_tensorflow_started_is_refused():
    float(np.asarray(tf.constant(1.0) + 1.0))  # TensorFlow has started
    with pytest.raises(JetxInputError, match="only before TensorFlow starts; set JETX_CPU"):
        split_cpu(2)
    with pytest.raises(JetxInputError, match="must be >= 1. Received: 0"):
        split_cpu(0)
