"""Drop the end of a completion that repeats the start of the suffix: the lines that follow the cursor, or the
closing bracket or quote already after it (the editor's auto-pairs). Accepting it would write them twice.
"""

from dataclasses import replace

from engine.context import InfillContext
from engine.postprocess.base import Candidate, indent_width, last_line
from engine.postprocess.brackets import imbalance

_OVERLAP_CHARS = frozenset(")]}>\"'`;, ")


def drop_suffix_duplicate(candidate: Candidate, ctx: InfillContext) -> Candidate:
    """Remove trailing lines equal to the suffix's next lines, then closers the suffix already supplies."""
    text = _drop_duplicate_lines(candidate.text, ctx)
    first_line = ctx.suffix.split("\n", 1)[0].lstrip()
    overlaps = [k for k in range(len(first_line), 0, -1) if text.endswith(first_line[:k])]
    for k in overlaps:
        # Only closers and quotes, and only if dropping them balances the junction (`f(` `()` `)` stays).
        if set(first_line[:k]) <= _OVERLAP_CHARS and imbalance(ctx, text[:-k]) < imbalance(ctx, text):
            text = text[:-k]
            break
    return replace(candidate, text=text)


def _drop_duplicate_lines(text: str, ctx: InfillContext) -> str:
    """Drop the completion's last k non-blank lines when they equal the suffix's first k non-blank lines,
    indentation included (a `}` closing a loop is not the `}` closing the function)."""
    lines = text.split("\n")
    before = last_line(ctx.prefix)
    # Line 0 is a whole line only when the cursor's line was blank before the cursor.
    first = 0 if not before.strip() else 1
    ours = [i for i in range(first, len(lines)) if lines[i].strip()]
    mine = [_key(before + lines[i] if i == 0 else lines[i]) for i in ours]
    theirs = [_key(line) for line in ctx.suffix.split("\n") if line.strip()]
    k = next((k for k in range(min(len(mine), len(theirs)), 0, -1) if mine[-k:] == theirs[:k]), 0)
    return "\n".join(lines[: ours[-k]]).rstrip() if k else text


def _key(line: str) -> tuple[int, str]:
    return indent_width(line), line.strip()
