"""Cut a completion where its scope ends: in line mode after the first line it writes on, in block mode before the first
line that dedents below the block it started in, or, at the top level, after the first definition (a return to
column 0 after indented lines). A model that runs on past the block writes code the suffix already has, or
code the user did not ask for.
"""

from dataclasses import replace

from engine.context import InfillContext
from engine.postprocess.base import Candidate, first_code_line, indent_width, last_line, scope_floor

_CLOSING_ONLY = frozenset(")]}>;, \t")


def limit_scope(candidate: Candidate, ctx: InfillContext, past_dedents: bool = False) -> Candidate:
    """Keep the first line (line mode: see first_written_line) or the lines of the block the completion opened
    (block mode; with `past_dedents`, down to the suffix's first line's indentation: base.scope_floor)."""
    lines = candidate.text.split("\n")
    if ctx.mode != "block":
        return replace(candidate, text=first_written_line(lines, ctx.suffix))
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


def first_written_line(lines: list[str], suffix: str) -> str:
    """Line mode's completion: the rest of the cursor's line. Where the model leaves that blank and breaks the line
    (the line was complete: after `primes.add(x);`), the next line it writes, as Copilot's do; with the break after
    it too when code follows the cursor on its line, so that code keeps a line of its own."""
    written = next((index for index, line in enumerate(lines) if line.strip()), 0)
    if written == 0:
        return lines[0]
    kept = "\n".join(lines[: written + 1])
    code_after_cursor = suffix.split("\n", 1)[0].strip()
    return kept + "\n" if code_after_cursor and written + 1 < len(lines) else kept
