"""The `jetx` command line follows its conventions: every command described, with an example,
every option with help, defaults shown, `-v` anywhere, `--json` for machines, exit codes listed.
"""

import argparse
import json
import subprocess
import sys

import pytest

from flows.cli import COMMANDS
from jetx.cli import build_parser
from jetx.cli.common import EXIT_CODES

PARSER = build_parser(COMMANDS)
SUBCOMMANDS = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices
#: `serve` runs until stopped: it has no result to print as JSON.
NO_JSON = {"serve"}


def test_every_command_is_listed():
    assert list(SUBCOMMANDS) == [
        "synth",
        "ingest",
        "features",
        "memory",
        "plan",
        "train",
        "evaluate",
        "compare",
        "walk-forward",
        "export",
        "predict",
        "promote",
        "run",
        "serve",
    ]


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_each_command_has_a_description_an_example_and_help_on_every_option(name):
    parser = SUBCOMMANDS[name]
    assert parser.description and len(parser.description) > 80, name
    assert parser.epilog.startswith("example:\n  jetx " + name), parser.epilog
    for action in parser._actions:
        if not isinstance(action, argparse._HelpAction):
            assert action.help, (name, action.dest)
    text = parser.format_help()
    assert "(default: None)" not in text and "(default: False)" not in text
    assert ("--json" in text) is (name not in NO_JSON), name


def test_defaults_are_shown():
    text = SUBCOMMANDS["train"].format_help()
    assert "model size and schedule (default: demo)" in text
    assert "seed of weights and shuffling (default: 0)" in text


@pytest.mark.parametrize("name, default", [("train", None), ("walk-forward", 1), ("run", 3)])
def test_stages_means_how_many_stages_from_stage_1_in_every_command(name, default, capsys):
    # One definition (`jetx.cli.common.add_stages`): `--stages 2` is stages 1 and 2 everywhere.
    parser = SUBCOMMANDS[name]
    action = next(a for a in parser._actions if a.dest == "stages")
    assert action.default == default and "train stages 1 to N" in action.help
    assert action.type("2") == 2
    for wrong in ("1,2,3", "0", "4"):
        with pytest.raises(argparse.ArgumentTypeError, match="how many stages to train, from"):
            action.type(wrong)


def test_the_main_help_lists_the_exit_codes():
    text = PARSER.format_help()
    for code, meaning in EXIT_CODES.items():
        assert f"{code:<4} {meaning}" in text


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["-v", "synth", "--rounds", "5", "--seed", "1", "--out", "x.csv"], True),
        (["synth", "--rounds", "5", "--seed", "1", "--out", "x.csv", "-v"], True),
        (["synth", "--rounds", "5", "--seed", "1", "--out", "x.csv"], False),
    ],
)
def test_verbose_works_before_and_after_the_command(argv, verbose):
    assert PARSER.parse_args(argv).verbose is verbose


def test_synth_prints_for_people_and_for_machines(tmp_path):
    jetx = [sys.executable, "-m", "flows.cli", "synth", "--rounds", "50", "--seed", "3"]
    human = subprocess.run(
        [*jetx, "--out", str(tmp_path / "a.csv")], capture_output=True, text=True
    )
    assert human.returncode == 0 and human.stdout.startswith(f"{tmp_path / 'a.csv'}: 50 rounds")
    machine = subprocess.run(
        [*jetx, "--out", str(tmp_path / "b.csv"), "--json"], capture_output=True, text=True
    )
    assert json.loads(machine.stdout) == {
        "out": str(tmp_path / "b.csv"),
        "rounds": 50,
        "signal": "none",
        "seed": 3,
    }


def _stopped_line(command: str, resume: str) -> str:
    return (
        f"jetx {command}: stopped by SIGTERM; the files it had finished are kept, none "
        f"half-written; run it again to {resume}"
    )


def test_sigterm_is_one_line_and_exit_143_and_leaves_no_half_file(tmp_path):
    # A real ingest held (jetx.testing.faults) with series.parquet written to its temporary
    # name, not yet renamed; a real SIGTERM; the temporary file is removed by its finally.
    import os
    import signal
    import time

    from jetx.testing import faults

    source = tmp_path / "h.csv"
    source.write_text("value\n1.5\n2.5\n")
    out, gate = tmp_path / "out", tmp_path / "gate"
    gate.write_text("series.parquet\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "jetx", "ingest", str(source), "--out", str(out)],
        env={**os.environ, **faults.environment(hold=str(gate))},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not gate.read_text().startswith("held"):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    assert list(out.glob(".*.tmp"))  # the half-published file exists at this moment
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    lines = [line for line in process.stderr.read().splitlines() if "WARNING" not in line]
    assert lines == [_stopped_line("ingest", "finish")]
    assert not list(out.glob(".*.tmp")) and not (out / "series.parquet").exists()


@pytest.mark.e2e
def test_sigterm_during_training_keeps_the_checkpoint_and_the_rerun_resumes(
    tiny_features, tmp_path
):
    import os
    import signal
    import time

    from jetx.testing import faults

    run = tmp_path / "run"
    command = [sys.executable, "-m", "jetx", "train", str(tiny_features), "--out", str(run)]
    command += ["--preset", "tiny", "--stages", "1", "--epochs", "3"]
    process = subprocess.Popen(
        command,
        env={**os.environ, **faults.environment(step_delay=0.05)},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not list(run.glob("stage*/checkpoints/*")):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 143
    err = process.stderr.read()
    assert err.splitlines()[-1] == _stopped_line("train", "resume from its last checkpoint")
    assert "Traceback" not in err
    assert not [p for p in run.rglob("*.tmp") if p.is_file()]
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stderr
