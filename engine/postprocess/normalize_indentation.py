"""Re-indent a completion in the file's style (or the editor's, from LSP FormattingOptions): a model trained
on mixed code may write four spaces in a tab-indented file, and ghost text must look like what the user types.
"""

from dataclasses import replace

from engine.context import InfillContext
from engine.postprocess.base import Candidate, Filter


def normalize_indentation(tab_size: int | None = None, insert_spaces: bool | None = None) -> Filter:
    """A filter that rewrites leading whitespace, level by level, into the target unit."""

    def apply(candidate: Candidate, ctx: InfillContext) -> Candidate:
        file_width = len(ctx.indent) if ctx.indent != "\t" else tab_size or 4
        target = {None: ctx.indent, True: " " * (tab_size or file_width), False: "\t"}[insert_spaces]
        lines = candidate.text.split("\n")
        # Line 0 continues the cursor's line, whose indentation is already in the document.
        return replace(
            candidate,
            text="\n".join([lines[0], *(_reindent(line, file_width, target) for line in lines[1:])]),
        )

    return apply


def _reindent(line: str, width: int, target: str) -> str:
    """Leading tabs count a level each, spaces `width` a level; leftover spaces (alignment) stay spaces."""
    body = line.lstrip(" \t")
    lead = line[: len(line) - len(body)]
    tabs = lead.count("\t")
    levels, alignment = divmod(len(lead) - tabs, width)
    return target * (tabs + levels) + " " * alignment + body
