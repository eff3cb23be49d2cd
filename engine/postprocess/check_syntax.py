"""Parse prefix + completion + suffix and count the ERROR/MISSING nodes the completion adds over prefix +
suffix alone: a completion that breaks the file is the one users reject, and counting relative to the file
means broken code being edited (the usual case) does not count against every candidate.
"""

from dataclasses import replace

from tree_sitter import Parser

from engine.context import InfillContext
from engine.languages import parser_for, syntax_errors
from engine.postprocess.base import Candidate, Filter


def check_syntax() -> Filter:
    """A filter that sets `syntax_errors_added`, parsing prefix + suffix once per context."""
    baseline: dict[tuple[str, str, str | None], int] = {}

    def apply(candidate: Candidate, ctx: InfillContext) -> Candidate:
        parser = parser_for(ctx.language)
        if parser is None:
            return candidate
        key = (ctx.prefix, ctx.suffix, ctx.language)
        if key not in baseline:
            baseline.clear()
            baseline[key] = _errors(parser, ctx.prefix + ctx.suffix)
        added = _errors(parser, ctx.prefix + candidate.text + ctx.suffix) - baseline[key]
        return replace(candidate, syntax_errors_added=added)

    return apply


def _errors(parser: Parser, text: str) -> int:
    return len(syntax_errors(parser.parse(text.encode()).root_node))
