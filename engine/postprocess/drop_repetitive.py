"""Drop the degenerate output of a model stuck in a loop: the same line again and again, or a short pattern
repeated to the end of the canvas. A diffusion canvas that is longer than the middle fails this way.
"""

import re
from dataclasses import replace

from engine.context import InfillContext
from engine.postprocess.base import Candidate, drop, last_line

_MAX_SAME_LINES = 2  # identical lines in a row at the end before the rest is cut as a loop
_REPEATED_TAIL = re.compile(r"(.{1,200}?)\1{3,}", re.DOTALL)  # a unit repeated 4+ times (matched reversed)
_MIN_REPEATED_CHARS = 32  # shorter repetition is ordinary code: `0, 0, 0`, `----`


def drop_repetitive(candidate: Candidate, ctx: InfillContext) -> Candidate:
    """Cut a trailing run of identical lines to one; drop a candidate whose tail is one unit repeated."""
    lines = candidate.text.rstrip().split("\n")
    # Compare lines as they will stand in the file: line 0 after the cursor line's indentation, if blank.
    before = last_line(ctx.prefix)
    full = [before + lines[0] if not before.strip() else lines[0], *lines[1:]]
    run = 1
    while run < len(full) and full[-run - 1].rstrip() == full[-1].rstrip() and full[-1].strip():
        run += 1
    text = "\n".join(lines[: len(lines) - run + 1]) if run > _MAX_SAME_LINES else candidate.text
    tail = _REPEATED_TAIL.match(text.rstrip()[::-1])
    if tail and tail.end() >= max(_MIN_REPEATED_CHARS, len(text.rstrip()) / 2):
        return drop(candidate)
    return replace(candidate, text=text)
