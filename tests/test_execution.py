"""The HumanEval executor must really execute: right code passes, wrong code, hangs and network use fail."""

import gzip
import json
from pathlib import Path

import pytest

from benchmarks.execution import humaneval_program, passes

SINGLE_LINE = Path(__file__).parents[2] / "shared/data/humaneval-infilling/HumanEval-SingleLineInfilling.jsonl.gz"


@pytest.fixture(scope="module")
def task():
    if not SINGLE_LINE.exists():
        pytest.skip("benchmark data ../shared/data is not beside this checkout")
    with gzip.open(SINGLE_LINE, "rt") as lines:
        return json.loads(next(lines))


def test_canonical_solution_passes(task):
    assert passes(humaneval_program(task, task["canonical_solution"]))


def test_wrong_completion_fails(task):
    assert not passes(humaneval_program(task, "    pass\n"))


@pytest.mark.parametrize(
    "program",
    ["raise SystemExit(3)", "while True: pass", "import socket; socket.create_connection(('127.0.0.1', 9))"],
)
def test_failures_and_hangs_do_not_pass(program):
    assert not passes(program, timeout=1.0)


def test_plain_program_passes():
    assert passes("assert sum(range(4)) == 6", timeout=2.0)


def test_a_hole_typed_partway_still_executes_as_the_task(task):
    """The line-mode variant (`--typed`) moves part of the hole's line into the prompt: the rest must still make
    the task's program, and a wrong rest must fail, or the suite would score the wrong thing."""
    from benchmarks.quality import typed_partway

    (typed,) = typed_partway([task])
    line = task["canonical_solution"].rstrip("\n")
    assert task["prompt"].endswith("\n") and typed["prompt"].startswith(task["prompt"])
    typed_part = typed["prompt"][len(task["prompt"]) :]
    assert typed_part.strip() and typed_part + typed["canonical_solution"] == line
    assert "\n" not in typed["canonical_solution"] and typed["suffix"].startswith("\n")
    assert passes(humaneval_program(typed, typed["canonical_solution"]))
    assert not passes(humaneval_program(typed, typed["canonical_solution"] + " + 1"))
