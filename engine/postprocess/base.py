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
