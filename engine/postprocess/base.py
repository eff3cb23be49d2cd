"""The one contract every postprocess filter follows: a candidate goes in, a candidate comes out.

An empty `text` means "drop"; filters never raise. Each filter lives in its own file, named for what it does;
the order lives only in `__init__.py` (Tabby's `postprocess/` layout).
"""

from collections.abc import Callable
from dataclasses import dataclass, replace

from engine.context import InfillContext


@dataclass(frozen=True)
class Candidate:
    """One completion the model proposed for the hole at the cursor."""

    text: str
    score: float  # model confidence, higher is better
    syntax_errors_added: int | None = None  # set by check_syntax; negative when it fixes errors; None: unknown
    draft: int = 0  # which of the model's drafts for this hole it came from (engine `candidates` > 1)


@dataclass(frozen=True)
class PostprocessOptions:
    """Per-request settings, from the editor (LSP FormattingOptions) or the CLI."""

    tab_size: int | None = None  # editor's tab width; None: follow the file
    insert_spaces: bool | None = None  # editor's choice of spaces over tabs; None: follow the file
    drop_syntax_errors: bool = False  # drop candidates that add syntax errors instead of ranking them last
    # A block's scope reaches down to the suffix's first line's indentation where that is indented (limit_scope):
    # for causal models, whose cuts the reranker chooses (EngineConfig.rerank_past_dedents).
    past_dedents: bool = False


Filter = Callable[[Candidate, InfillContext], Candidate]


def drop(candidate: Candidate) -> Candidate:
    """The dropped form of a candidate."""
    return replace(candidate, text="")


def last_line(text: str) -> str:
    """The text after the last newline: for a prefix, the part of the cursor's line before the cursor."""
    return text[text.rfind("\n") + 1 :]


def indent_width(line: str) -> int:
    """Columns of a line's leading whitespace (a tab counts 4): enough to compare nesting within one file."""
    return len(line[: len(line) - len(line.lstrip(" \t"))].expandtabs(4))


def first_code_line(text: str) -> str | None:
    """The first non-blank line of `text`, trailing blanks dropped; None when it has none."""
    return next((line.rstrip() for line in text.split("\n") if line.strip()), None)


def scope_floor(block_indent: int, suffix_line: str | None, past_dedents: bool) -> int:
    """The indentation a block's lines may not go below: the block's first line's, or with `past_dedents` that of
    the suffix's first line (`first_code_line(suffix)`) where that is lower but still indented (the code between
    the cursor and the suffix's first line belongs to the hole; a suffix at the top level is no floor: code there
    would be a new definition)."""
    suffix_indent = indent_width(suffix_line) if past_dedents and suffix_line else 0
    return min(block_indent, suffix_indent) if suffix_indent else block_indent
