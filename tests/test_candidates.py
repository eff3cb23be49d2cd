"""Best of several drafts (`candidates`): each hole is denoised with several seeds in one batch, and
post-processing shows the best draft. Runs the shipped blockfill-tiny on real holes."""

import sysconfig
from pathlib import Path

import pytest

from engine.config import with_overrides
from engine.infill import CANDIDATE_SEED_STRIDE, Engine, InfillRequest
from engine.models.loading import EMBEDDED_DIR

pytestmark = pytest.mark.skipif(not (EMBEDDED_DIR / "model.safetensors").exists(), reason="embedded model not shipped")


def _holes(count: int) -> list[InfillRequest]:
    """Rest-of-line holes in a standard-library module: three characters into `if`, `for` and `return` lines."""
    text = (Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py").read_text()
    requests, offset = [], 0
    for line in text.splitlines(keepends=True):
        code = line.lstrip()
        if code.startswith(("if ", "for ", "return ")) and len(requests) < count:
            cursor = offset + len(line) - len(code) + 3
            requests.append(InfillRequest(text[:cursor], text[cursor:], "python", force=True))
        offset += len(line)
    return requests


def test_the_shown_draft_is_one_of_the_single_seed_drafts_and_shows_whenever_one_of_them_does():
    single = Engine(with_overrides({"model": "blockfill-tiny", "threads": 1, "refine_steps": 0}))
    several = Engine(
        with_overrides({"model": "blockfill-tiny", "threads": 1, "refine_steps": 0, "candidates": 3}), single.loaded
    )
    holes = _holes(8)
    best = several.complete(holes)
    disagreements = 0
    for index, hole in enumerate(holes):
        drafts = []
        for j in range(3):
            single.forget_previous()  # no prompt-cache reuse: each draft from scratch, as in the batch
            drafts.append(single.complete([hole], [j * CANDIDATE_SEED_STRIDE])[0])
        assert best[index].raw_text in {d.raw_text for d in drafts}
        disagreements += len({d.text for d in drafts}) > 1
        if any(d.text for d in drafts):
            assert best[index].text, (index, [d.text for d in drafts])
    assert disagreements >= 2  # the choice is a real one
    assert sum(bool(c.text) for c in best) >= sum(bool(c.text) for c in single.complete(holes))


def test_fewer_than_one_draft_is_a_configuration_error():
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="candidates"):
        Engine(with_overrides({"candidates": 0}))
