"""Parse prefix + completion + suffix and count the ERROR/MISSING nodes the completion adds over prefix +
suffix alone: a completion that breaks the file is the one users reject, and counting relative to the file
means broken code being edited (the usual case) does not count against every candidate.

A multi-line completion that adds errors is cut back to its longest run of first lines that adds none: a model
often writes a right first line and loses its way after it, and the editor should still get that line. Only where
broken completions would be dropped (`drop_syntax_errors`): where they are shown, they are shown as written.

tree-sitter recovers from errors it was built to expect and misses some that a compiler rejects (a block left
without a body, a stray indent). For Python the interpreter's own parser is at hand, so a completion that makes
`ast.parse` reject a file it accepted without the completion counts as one more added error.
"""

import ast
from dataclasses import replace

from tree_sitter import Parser

from engine.context import InfillContext
from engine.languages import parser_for, syntax_errors
from engine.postprocess.base import Candidate, Filter
from engine.postprocess.end_with_line_break import end_with_line_break


def check_syntax(cut_back: bool = True) -> Filter:
    """A filter that sets `syntax_errors_added`, parsing prefix + suffix once per context; `cut_back=False` only
    counts (benchmarks measuring the text as the model wrote it)."""
    baseline: dict[tuple[str, str, str | None], tuple[int, bool]] = {}  # -> (tree-sitter errors, compiles)

    def apply(candidate: Candidate, ctx: InfillContext) -> Candidate:
        parser = parser_for(ctx.language)
        if parser is None:
            return candidate
        key = (ctx.prefix, ctx.suffix, ctx.language)
        if key not in baseline:
            baseline.clear()
            baseline[key] = _errors(parser, ctx.prefix + ctx.suffix), _compiles(ctx.prefix + ctx.suffix, ctx.language)
        errors, compiles = baseline[key]

        def added_by(middle: str) -> int:
            whole = ctx.prefix + middle + ctx.suffix
            return _errors(parser, whole) - errors + int(compiles and not _compiles(whole, ctx.language))

        text = candidate.text
        added = added_by(text)
        if cut_back and added > 0:
            lines = text.split("\n")
            for keep in range(len(lines) - 1, 0, -1):  # longest first
                shorter = "\n".join(lines[:keep]).rstrip()
                if not shorter:  # only blank lines left
                    continue
                shorter = end_with_line_break(replace(candidate, text=shorter), ctx).text
                shorter_added = added_by(shorter)
                if shorter_added <= 0:
                    text, added = shorter, shorter_added
                    break
        return replace(candidate, text=text, syntax_errors_added=added)

    return apply


def _compiles(text: str, language: str | None) -> bool:
    """Whether Python's own parser accepts `text`; True for other languages (tree-sitter alone judges them)."""
    if language not in ("python", "py"):
        return True
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):  # ValueError: NUL bytes
        return False
    return True


def _errors(parser: Parser, text: str) -> int:
    return len(syntax_errors(parser.parse(text.encode()).root_node))
