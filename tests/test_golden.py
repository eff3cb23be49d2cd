"""Golden cases (Tabby style) through the whole postprocess pipeline: tests/golden/<topic>/<case>.toml.

A case has `description`, optional `[config]` (PostprocessOptions fields), `[context] text` (the language on
its first line, `├…┤` the model's completion at the cursor), and `[expected]` with `text` (the same document
with the expected completion marked), `unchanged = true` or `discard = true`. `xfail = "FIXME: ..."` keeps a
known-bad case checked in.
"""

import tomllib
from pathlib import Path

import pytest

from engine.postprocess import Candidate, PostprocessOptions, postprocess
from tests.markers import marked_context, parse_marked

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(GOLDEN.glob("*/*.toml"))


def _param(path: Path) -> object:
    case = tomllib.loads(path.read_text(encoding="utf-8"))
    marks = [pytest.mark.xfail(reason=case["xfail"], strict=True)] if "xfail" in case else []
    return pytest.param(case, id=f"{path.parent.name}/{path.stem}", marks=marks)


@pytest.mark.parametrize("case", [_param(path) for path in CASES])
def test_golden(case: dict) -> None:
    marked, ctx = marked_context(case["context"]["text"])
    assert marked.completion is not None, "the context must mark a completion with ├…┤"
    result = postprocess([Candidate(marked.completion, 1.0)], ctx, PostprocessOptions(**case.get("config", {})))
    expected = case["expected"]
    if expected.get("discard"):
        assert result == []
    elif expected.get("unchanged"):
        assert [c.text for c in result] == [marked.completion]
    else:
        want = parse_marked(expected["text"])
        assert (want.text, want.offset) == (marked.text, marked.offset), "expected text must match the context"
        assert [c.text for c in result] == [want.completion]


def test_every_topic_has_cases() -> None:
    assert len(CASES) >= 16 and all(any(topic.iterdir()) for topic in GOLDEN.iterdir())
