"""Tabby-style marked documents for tests: the language id on the first line, `║` the cursor, `├…┤` a
completion placed at the cursor. The tokenizer is a stand-in (about three UTF-8 bytes a token).
"""

from dataclasses import dataclass

from engine.context import ContextBudget, InfillContext, build_context

CURSOR, START, END = "║", "├", "┤"


def count_tokens(text: str) -> int:
    """Stand-in for the model tokenizer's counter: ~3 bytes a token, roughly byte-level BPE on code."""
    return len(text.encode()) // 3 + 1


@dataclass(frozen=True)
class Marked:
    """A marked document taken apart."""

    language: str
    text: str  # the document without markers and without the completion
    offset: int  # the cursor
    completion: str | None  # between `├` and `┤`, if marked


def parse_marked(source: str) -> Marked:
    """Split the language line off and find the markers; `║` may be left out when `├` marks the cursor."""
    language, _, body = source.partition("\n")
    completion = None
    if START in body:
        head, rest = body.split(START, 1)
        completion, tail = rest.split(END, 1)
        body = head + (CURSOR if CURSOR not in head else "") + tail
    offset = body.index(CURSOR)
    return Marked(language.strip(), body.replace(CURSOR, "", 1), offset, completion)


def marked_context(source: str, budget: ContextBudget = ContextBudget()) -> tuple[Marked, InfillContext]:  # noqa: B008
    """The marked document and its context, from a real parse."""
    marked = parse_marked(source)
    ctx, _ = build_context(marked.text, marked.offset, marked.language, count_tokens, budget)
    return marked, ctx
