"""Cut a completion where its scope ends: in line mode after the first line, in block mode before the first
line that dedents below the block it started in. A model that runs on past the block writes code the suffix
already has, or code the user did not ask for.
"""

from dataclasses import replace

from engine.context import InfillContext
from engine.postprocess.base import Candidate, indent_width, last_line

_CLOSING_ONLY = frozenset(")]}>;, \t")


def limit_scope(candidate: Candidate, ctx: InfillContext) -> Candidate:
    """Keep the first line (line mode) or the lines of the block the completion opened (block mode)."""
    lines = candidate.text.split("\n")
    if ctx.mode != "block":
        return replace(candidate, text=lines[0])
    before = last_line(ctx.prefix)
    # The first line continues the cursor's line: it sets the block's indentation only on a blank line.
    effective = [before + lines[0] if not before.strip() else "", *lines[1:]]
    indents = [indent_width(line) for line in effective if line.strip()]
    if not indents:
        return candidate
    kept = lines[:1]
    for line in lines[1:]:
        if line.strip() and indent_width(line) < indents[0]:
            # A dedent leaves the block; a line of closers alone (`}`, `});`) closes it and is kept.
            if set(line) <= _CLOSING_ONLY:
                kept.append(line)
            break
        kept.append(line)
    return replace(candidate, text="\n".join(kept).rstrip())
