"""Parse prefix + completion + suffix and count the ERROR/MISSING nodes the completion adds over prefix +
suffix alone: a completion that breaks the file is the one users reject, and counting relative to the file
means broken code being edited (the usual case) does not count against every candidate.

A multi-line completion that adds errors is cut back to its longest run of first lines that adds none: a model
often writes a right first line and loses its way after it, and the editor should still get that line. Only where
broken completions would be dropped (`drop_syntax_errors`): where they are shown, they are shown as written.
"""

from dataclasses import replace

from tree_sitter import Parser

from engine.context import InfillContext
from engine.languages import parser_for, syntax_errors
from engine.postprocess.base import Candidate, Filter


def check_syntax(cut_back: bool = True) -> Filter:
    """A filter that sets `syntax_errors_added`, parsing prefix + suffix once per context; `cut_back=False` only
    counts (benchmarks measuring the text as the model wrote it)."""
    baseline: dict[tuple[str, str, str | None], int] = {}

    def apply(candidate: Candidate, ctx: InfillContext) -> Candidate:
        parser = parser_for(ctx.language)
        if parser is None:
            return candidate
        key = (ctx.prefix, ctx.suffix, ctx.language)
        if key not in baseline:
            baseline.clear()
            baseline[key] = _errors(parser, ctx.prefix + ctx.suffix)
        text = candidate.text
        added = _errors(parser, ctx.prefix + text + ctx.suffix) - baseline[key]
        if cut_back and added > 0:
            lines = text.split("\n")
            for keep in range(len(lines) - 1, 0, -1):  # longest first
                shorter = "\n".join(lines[:keep]).rstrip()
                if not shorter:  # only blank lines left
                    continue
                shorter_added = _errors(parser, ctx.prefix + shorter + ctx.suffix) - baseline[key]
                if shorter_added <= 0:
                    text, added = shorter, shorter_added
                    break
        return replace(candidate, text=text, syntax_errors_added=added)

    return apply


def _errors(parser: Parser, text: str) -> int:
    return len(syntax_errors(parser.parse(text.encode()).root_node))
