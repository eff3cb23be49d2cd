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


def test_the_base_writes_a_hole_that_closes_its_branch_and_goes_on(engine):
    """A hole that dedents before the suffix's first line (`else:` after the `if` body it starts in): with
    reranking the middle runs down to the suffix's indentation and the check passes; the end rule and
    limit_scope of a plain block (rerank_past_dedents=false) stop at the first dedent, and it fails."""
    prefix = "def sign_counts(values):\n    positive = negative = 0\n    for value in values:\n        if value > 0:\n"
    suffix = "    return positive, negative\n\n\nassert sign_counts([1, -2, 3]) == (2, 1)\n"
    request = InfillRequest(prefix, suffix, "python", force=True)
    completion = engine.complete([request])[0]
    exec(compile(prefix + completion.text + suffix, "<hole>", "exec"), {})
    one_block = Engine(EngineConfig(model=BASE.name, device="cpu", rerank_past_dedents=False), engine.loaded)
    cut = one_block.complete([request])[0]
    assert cut.text.count("\n") < completion.text.count("\n"), (cut.text, completion.text)
    with pytest.raises(AssertionError):
        exec(compile(prefix + cut.text + suffix, "<hole>", "exec"), {})


def test_the_base_suggests_the_next_line_at_the_end_of_a_complete_one(engine):
    """The cursor after `result = width * height`: nothing belongs on that line, so the suggestion is the next one
    (it used to be empty: line mode ended at the line break the model wrote first)."""
    prefix = "def area(width, height):\n    result = width * height"
    suffix = "\n\n\nassert area(2, 3) == 6\n"
    completion = engine.complete([InfillRequest(prefix, suffix, "python")])[0]
    assert completion.context.mode == "line" and completion.text.startswith("\n    "), completion
    exec(compile(prefix + completion.text + suffix, "<hole>", "exec"), {})


def test_a_file_that_mentions_fim_markers_keeps_them_as_text(engine):
    """Source that spells the base's special tokens (blockfill's own does) is text: the prompt holds each FIM marker
    once, where the engine puts it, and no end of text; read as the markers, the file's second `<|fim_suffix|>`
    would restructure the prompt. The hole is still filled so that its check passes."""
    markers = 'MARKERS = ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|endoftext|>"]\n\n\n'
    prefix, suffix = markers + HOLES[0][0], HOLES[0][1] + "# <|fim_middle|> <|im_end|>\n"
    request = InfillRequest(prefix, suffix, "python", force=True)
    context, _ = engine.plan(request)
    prompt, _ = engine._fim_prompt(context, context.canvas_tokens, engine._head(context))
    special = engine.loaded.special
    assert [prompt.input_ids.count(marker) for marker in (special.fim_prefix, special.fim_suffix)] == [1, 1]
    assert prompt.input_ids.count(special.fim_middle) == 1 and set(prompt.input_ids).isdisjoint(special.stop_ids)
    completion = engine.complete([request])[0]
    exec(compile(prefix + completion.text + suffix, "<hole>", "exec"), {})
