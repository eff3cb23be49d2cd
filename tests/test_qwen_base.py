"""The pretrained base that setup.sh fetches (qwen2.5-coder-0.5b), through the engine as a user runs it.

It must fill small functions so that their own checks pass, at the end of a line, in an empty body, and at a line's
start before existing code (whole lines inserted), and stop where its middle ends instead of running on to the
canvas's end.
"""

import pytest

from engine.config import EngineConfig
from engine.infill import Engine, InfillRequest
from engine.models.catalog import CATALOG, is_installed

BASE = CATALOG["qwen2.5-coder-0.5b"]
pytestmark = pytest.mark.skipif(
    not is_installed(BASE),
    reason="qwen2.5-coder-0.5b is not installed: `blockfill models fetch qwen2.5-coder-0.5b` (setup.sh does it)",
)

HOLES = [
    ('def add(a, b):\n    """Return the sum of a and b."""\n    return ', "\n\n\nassert add(2, 3) == 5\n"),
    ("def square(x):\n    ", "\n\n\nassert square(3) == 9\n"),
    (
        "def total(items):\n    result = 0\n    for item in items:\n",
        "    return result\n\n\nassert total([1, 2, 3]) == 6\n",
    ),
]


@pytest.fixture(scope="module")
def engine():
    return Engine(EngineConfig(model=BASE.name, device="cpu"))


@pytest.mark.parametrize(("prefix", "suffix"), HOLES)
def test_the_base_fills_a_function_so_that_its_check_passes(engine, prefix, suffix):
    completion = engine.complete([InfillRequest(prefix, suffix, "python", force=True)])[0]
    program = prefix + completion.text + suffix
    exec(compile(program, "<hole>", "exec"), {})  # the function's own assert
    assert completion.steps <= completion.tokens < 24, completion  # at least a token a step, ended by an end rule
