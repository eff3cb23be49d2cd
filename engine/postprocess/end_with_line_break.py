"""End a completion inserted before code on the cursor's line with a line break (and the cursor line's
indentation), so that code stays on a line of its own instead of being glued to the completion's last line.

A hole at a line's start is whole lines (HumanEval-Infilling's single-line holes are exactly this): the model
writes them without the final newline, or post-processing trimmed it.
"""

from dataclasses import replace

from engine.context import InfillContext
from engine.postprocess.base import Candidate, last_line


def end_with_line_break(candidate: Candidate, ctx: InfillContext) -> Candidate:
    if not ctx.inserts_lines or not candidate.text.strip():
        return candidate
    return replace(candidate, text=candidate.text.rstrip() + "\n" + last_line(ctx.prefix))
