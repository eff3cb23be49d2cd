"""Cut a completion where its scope ends: in line mode after the first line, in block mode before the first
line that dedents below the block it started in, or, at the top level, after the first definition (a return to
column 0 after indented lines). A model that runs on past the block writes code the suffix already has, or
code the user did not ask for.
"""

from dataclasses import replace

from engine.context import InfillContext
from engine.postprocess.base import Candidate, first_code_line, indent_width, last_line, scope_floor

_CLOSING_ONLY = frozenset(")]}>;, \t")


def limit_scope(candidate: Candidate, ctx: InfillContext, past_dedents: bool = False) -> Candidate:
    """Keep the first line (line mode) or the lines of the block the completion opened (block mode; with
    `past_dedents`, down to the suffix's first line's indentation: base.scope_floor)."""
    lines = candidate.text.split("\n")
    if ctx.mode != "block":
        return replace(candidate, text=lines[0])
    before = last_line(ctx.prefix)
    # The first line continues the cursor's line: it sets the block's indentation only on a blank line.
    effective = [before + lines[0] if not before.strip() else "", *lines[1:]]
    indents = [indent_width(line) for line in effective if line.strip()]
    if not indents:
        return candidate
    floor = scope_floor(indents[0], first_code_line(ctx.suffix), past_dedents)
    kept = lines[:1]
    went_deeper = False  # an indented line came after the block's first line
    for line in lines[1:]:
        width = indent_width(line)
        closers_only = set(line) <= _CLOSING_ONLY
        # A dedent leaves the block. At the top level there is nothing to dedent to: coming back to the block's
        # column after indented lines starts a second definition nobody asked for.
        if line.strip() and (width < floor or (indents[0] == 0 and went_deeper and width == 0)):
            if closers_only:  # a line of closers alone (`}`, `});`) closes the block and is kept
                kept.append(line)
                if width < floor:
                    break
                continue
            break
        went_deeper = went_deeper or (bool(line.strip()) and width > indents[0])
        kept.append(line)
    return replace(candidate, text="\n".join(kept).rstrip())
