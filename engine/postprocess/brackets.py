"""Bracket and quote scanning shared by the filters and the ranking, so they agree on what is open where.

A light lexer, not a parser: it skips strings and comments by each language's delimiters and tracks brackets.
Tree-sitter judges syntax as a whole (check_syntax); this judges where prefix, completion and suffix meet.
"""

import re
from dataclasses import dataclass
from functools import lru_cache

from engine.context import InfillContext
from engine.languages import grammar_name

PAIRS = {"(": ")", "[": "]", "{": "}"}
_OPENER_OF = {close: open_ for open_, close in PAIRS.items()}
# Quote delimiters by grammar, longest first. Rust's `'` is mostly lifetimes, so it is not a quote there.
_QUOTES = {
    "python": ('"""', "'''", '"', "'"),
    "javascript": ('"', "'", "`"),
    "typescript": ('"', "'", "`"),
    "tsx": ('"', "'", "`"),
    "go": ('"', "'", "`"),
    "rust": ('"',),
    "java": ('"""', '"', "'"),
}
_MULTILINE_QUOTES = frozenset({'"""', "'''", "`"})
_QUOTE_CHARS = frozenset("\"'`")
_SPECIAL = re.compile(r"[][(){}\"'`#/*\\\n]")  # the only characters that can change the state


@dataclass(frozen=True)
class Scan:
    """Lexer state after some text."""

    stack: tuple[str, ...] = ()  # unclosed openers, innermost last
    quote: str | None = None  # delimiter of the string still open, if any
    comment: str | None = None  # "line" or "block" while inside a comment
    orphans: int = 0  # closers met with nothing open
    unterminated: int = 0  # one-line strings still open at a line's end
    mismatch: int | None = None  # index in the last scanned text of the first closer of the wrong kind
    orphan: int | None = None  # index in the last scanned text of the first closer with nothing open


def scan(text: str, language: str | None, state: Scan = Scan()) -> Scan:  # noqa: B008 (frozen)
    """Continue `state` over `text`."""
    grammar = grammar_name(language)
    line_comment = _line_comment(grammar)
    quotes = _QUOTES.get(grammar or "", ('"', "'"))
    stack, quote, comment = list(state.stack), state.quote, state.comment
    orphans, unterminated, mismatch, orphan = state.orphans, state.unterminated, None, None
    i = 0
    while special := _SPECIAL.search(text, i):  # jump over characters that cannot change the state
        i, ch = special.start(), special.group()
        if comment:
            if (comment == "line" and ch == "\n") or (comment == "block" and text.startswith("*/", i)):
                i += comment == "block"
                comment = None
        elif quote:
            if ch == "\\":
                i += 1
            elif text.startswith(quote, i):
                i, quote = i + len(quote) - 1, None
            elif ch == "\n" and quote not in _MULTILINE_QUOTES:
                unterminated, quote = unterminated + 1, None
        elif line_comment and text.startswith(line_comment, i):
            comment = "line"
        elif _has_block_comments(grammar) and text.startswith("/*", i):
            comment, i = "block", i + 1
        elif ch in _QUOTE_CHARS and (opened := next((q for q in quotes if text.startswith(q, i)), None)):
            quote, i = opened, i + len(opened) - 1
        elif ch in PAIRS:
            stack.append(ch)
        elif ch in _OPENER_OF:
            if stack and stack[-1] == _OPENER_OF[ch]:
                stack.pop()
            elif stack:
                mismatch = i if mismatch is None else mismatch
            else:
                orphans, orphan = orphans + 1, i if orphan is None else orphan
        i += 1
    return Scan(tuple(stack), quote, comment, orphans, unterminated, mismatch, orphan)


def _line_comment(grammar: str | None) -> str | None:
    return "#" if grammar == "python" else "//" if grammar else None


def _has_block_comments(grammar: str | None) -> bool:
    """`/* ... */`: every grammar here but Python's."""
    return grammar not in (None, "python")


@lru_cache(maxsize=16)
def prefix_scan(prefix: str, language: str | None) -> Scan:
    """The state at the cursor, scanned once per prefix however many candidates and filters ask."""
    return scan(prefix, language)


def imbalance(ctx: InfillContext, middle: str) -> int:
    """How unbalanced prefix + middle + suffix is: closers without openers, wrong closers, what stays open."""
    after_middle = scan(middle, ctx.language, prefix_scan(ctx.prefix, ctx.language))
    end = scan(ctx.suffix, ctx.language, after_middle)
    wrong = (after_middle.mismatch is not None) + (end.mismatch is not None)
    return end.orphans + end.unterminated + wrong + len(end.stack) + (end.quote is not None)


def adds_only_comments(ctx: InfillContext, middle: str) -> bool:
    """Every non-blank line `middle` writes is a comment, where the cursor was in code: such a middle is likely to
    any language model (a trailing `// ...` after the cursor's code reads as well as anything), so ranking by
    likelihood alone would show it ahead of code (a fifth of SantaCoder's shown middles, benchmarks/RESULTS.md).
    False inside a comment or string at the cursor: there the user is writing one."""
    state = prefix_scan(ctx.prefix, ctx.language)
    if state.comment or state.quote:
        return False
    grammar = grammar_name(ctx.language)
    starts = tuple(filter(None, (_line_comment(grammar), "/*" if _has_block_comments(grammar) else None)))
    written = False
    for line in middle.split("\n"):
        code = line.strip()
        if code:
            if not (state.comment == "block" or code.startswith(starts)):
                return False
            written = True
        state = scan(line + "\n", ctx.language, state)
    return written
