"""From (document, cursor) to what the model fills: the mode, the canvas size, and a budgeted prefix/suffix.

Everything here reads the document's tree-sitter tree, never raises on broken code (problems come back as
warnings, rust-analyzer style), and costs well under a millisecond on a 3,000-line file when the tree is kept
up to date by `ParsedDocument.apply_edit`. Offsets are Python string indices (code points); converting LSP's
UTF-16 positions to them is the server's job.
"""

import bisect
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Literal

from tree_sitter import Node, Tree

from engine.languages import parser_for, syntax_errors

Mode = Literal["line", "block", "skip"]


@dataclass(frozen=True)
class InfillContext:
    """What the prompt builder and the postprocess filters need to know about one request."""

    prefix: str  # text before the cursor; may open with header lines (imports, enclosing signatures) cut off
    suffix: str  # text after the cursor, ending at a syntax boundary
    mode: Mode  # line: finish this line; block: write a body or statements; skip: completion would be noise
    canvas_tokens: int  # canvas length for the model; 0 in skip mode
    prefix_start: int  # document offset where the contiguous part of `prefix` begins (after any header lines)
    suffix_end: int  # document offset where `suffix` ends
    prefix_tokens: int  # count_tokens(prefix)
    suffix_tokens: int  # count_tokens(suffix)
    language: str | None  # the LSP language id; None or unknown means no grammar
    reason: str  # why this mode, in one sentence (`blockfill infill --explain`)
    indent: str  # the file's indentation unit: "\t" or some spaces
    inserts_lines: bool = False  # the cursor is at a line's start (or after its indentation) before code on that
    # line: the middle is whole lines inserted before that code, so it must end with a line break


@dataclass(frozen=True)
class ContextBudget:
    """Token budgets, counted with the model's tokenizer."""

    max_prefix_tokens: int = 768  # before the cursor: most of what predicts the middle is here
    max_suffix_tokens: int = 256  # after the cursor: enough for the middle to join what follows
    line_canvas: int = 24  # canvas for finishing one line
    block_canvas: int = 128  # canvas for a body or a few statements

    def __post_init__(self) -> None:
        if min(self.max_prefix_tokens, self.max_suffix_tokens, self.line_canvas, self.block_canvas) <= 0:
            raise ValueError(f"every context budget must be positive: {self}")


# Node types (across the bundled grammars) that hold a sequence of statements or members: a line whose first
# node sits directly in one of them starts a statement, so prefix and suffix may be cut there.
_BODY_TYPES = frozenset(
    {
        "module", "block", "program", "statement_block", "class_body", "switch_body", "switch_case",
        "switch_default", "source_file", "statement_list", "declaration_list", "field_declaration_list",
        "translation_unit", "compound_statement", "interface_body", "enum_body", "constructor_body",
        "switch_block_statement_group", "object_type", "expression_case", "default_case", "type_case",
        "communication_case", "match_block", "enum_variant_list",
    }
)  # fmt: skip
_STRING_TYPES = frozenset(
    {
        "string", "template_string", "string_literal", "raw_string_literal", "interpreted_string_literal",
        "char_literal", "character_literal", "text_block", "rune_literal", "raw_string",
    }
)  # fmt: skip
# Code inside a string: an f-string's `{x}`, a template literal's `${x}`.
_INTERPOLATION_TYPES = frozenset({"interpolation", "template_substitution"})
# Top-level statements worth keeping when the prefix no longer reaches them.
_IMPORT_TYPES = frozenset(
    {
        "import_statement", "import_from_statement", "future_import_statement", "import_declaration",
        "use_declaration", "preproc_include", "package_clause", "package_declaration", "using_declaration",
    }
)  # fmt: skip
# A definition whose header (signature) is worth keeping: any node with a `body` and one of these in its type.
_SCOPE_WORDS = (
    "function",
    "method",
    "class",
    "impl",
    "trait",
    "interface",
    "namespace",
    "constructor",
    "struct",
)
_CLOSERS = ")]}>;,"
_OPENERS = frozenset({"{", ":"})  # tokens that end a line opening a block (Python's colon, C-family braces)
_CUT_STRIDE = 16  # lines: the prefix start moves in steps of this many lines, so typing keeps the prompt cache
_HEADER_SHARE = 4  # header lines may take at most 1/_HEADER_SHARE of the prefix budget
_INDENT_WINDOW = 3_000  # characters either side of the cursor read to guess the indentation unit


def build_context(
    text: str,
    offset: int,
    language: str | None,
    count_tokens: Callable[[str], int],
    budget: ContextBudget = ContextBudget(),  # noqa: B008 (frozen, so a shared default is safe)
    tree: Tree | None = None,
) -> tuple[InfillContext, list[str]]:
    """Decide the mode at `offset` and cut the prefix and suffix; never raises on broken code.

    `tree` is the document's current tree (from `ParsedDocument`); without one the text is parsed here.
    The prefix and suffix are cut in skip mode too, so a caller may still complete when the user asks.
    """
    if not 0 <= offset <= len(text):
        raise ValueError(f"cursor offset {offset} is outside the document (0..{len(text)})")
    warnings: list[str] = []
    # Cuts re-count the same chunks (the header pass repeats the prefix pass): count each string once.
    count = cache(count_tokens)
    source = text.encode()
    if tree is None:
        parser = parser_for(language)
        tree = parser.parse(source) if parser else None
    root = tree.root_node if tree else None
    if root is None:
        named = f"language {language!r}" if language else "a document without a language id"
        warnings.append(f"no grammar for {named}: line mode, cut at whole lines")
    elif root.has_error:
        # The line being typed is unfinished by nature: only errors that start elsewhere are worth a warning.
        cursor_row = text.count("\n", 0, offset)
        lines = sorted({node.start_point.row + 1 for node in syntax_errors(root, limit=5)} - {cursor_row + 1})
        if lines:
            warnings.append("syntax errors near line " + ", ".join(map(str, lines)))
    doc = _Doc(text, source, root)
    cursor = doc.byte(offset)
    mode, reason = _decide_mode(doc, offset, cursor)
    suffix_end = _cut_suffix(doc, offset, budget.max_suffix_tokens, count, warnings)
    prefix_start, header = _cut_prefix_with_header(doc, offset, cursor, budget.max_prefix_tokens, count, warnings)
    prefix, suffix = header + text[prefix_start:offset], text[offset:suffix_end]
    canvas = {"line": budget.line_canvas, "block": budget.block_canvas, "skip": 0}[mode]
    context = InfillContext(
        prefix=prefix,
        suffix=suffix,
        mode=mode,
        canvas_tokens=canvas,
        prefix_start=prefix_start,
        suffix_end=suffix_end,
        prefix_tokens=count(prefix),
        suffix_tokens=count(suffix),
        language=language,
        reason=reason,
        indent=indent_unit(text[max(offset - _INDENT_WINDOW, 0) : offset + _INDENT_WINDOW], language),
        inserts_lines=mode != "skip" and _before_code_on_line(doc, offset),
    )
    return context, warnings


class ParsedDocument:
    """A document's text and tree kept in step: each edit costs a `tree.edit` and an incremental reparse."""

    def __init__(self, text: str, language: str | None) -> None:
        self.language = language
        self.text = text
        self._parser = parser_for(language)
        self.tree: Tree | None = self._parser.parse(text.encode()) if self._parser else None

    def apply_edit(self, start_offset: int, end_offset: int, new_text: str) -> None:
        """Replace text[start_offset:end_offset] (code points) by `new_text` and reparse incrementally."""
        old = self.text
        if not 0 <= start_offset <= end_offset <= len(old):
            raise ValueError(f"edit range {start_offset}..{end_offset} is outside the document (0..{len(old)})")
        self.text = old[:start_offset] + new_text + old[end_offset:]
        if self._parser is None or self.tree is None:
            return
        start_byte, start_point = _byte_and_point(old, start_offset)
        old_end_byte, old_end_point = _byte_and_point(old, end_offset)
        inserted = new_text.encode()
        last_newline = new_text.rfind("\n")
        if last_newline < 0:
            new_end_point = (start_point[0], start_point[1] + len(inserted))
        else:
            tail = len(new_text[last_newline + 1 :].encode())
            new_end_point = (start_point[0] + new_text.count("\n"), tail)
        self.tree.edit(
            start_byte=start_byte,
            old_end_byte=old_end_byte,
            new_end_byte=start_byte + len(inserted),
            start_point=start_point,
            old_end_point=old_end_point,
            new_end_point=new_end_point,
        )
        self.tree = self._parser.parse(self.text.encode(), self.tree)

    def context(
        self,
        offset: int,
        count_tokens: Callable[[str], int],
        budget: ContextBudget = ContextBudget(),  # noqa: B008 (frozen)
    ) -> tuple[InfillContext, list[str]]:
        """`build_context` on this document's current text and tree."""
        return build_context(self.text, offset, self.language, count_tokens, budget, self.tree)


def _byte_and_point(text: str, offset: int) -> tuple[int, tuple[int, int]]:
    """UTF-8 byte offset and tree-sitter point (row, byte column) of a code-point offset."""
    line_start = text.rfind("\n", 0, offset) + 1
    column = len(text[line_start:offset].encode())
    return len(text[:line_start].encode()) + column, (text.count("\n", 0, offset), column)


def indent_unit(text: str, language: str | None = None) -> str:
    """The file's indentation unit, from the most common step between consecutive indented lines."""
    tabs = spaces = 0
    steps: Counter[int] = Counter()
    previous = 0
    for line in text.splitlines():
        stripped = line.lstrip(" \t")
        if not stripped:
            continue
        lead = line[: len(line) - len(stripped)]
        tabs += lead.startswith("\t")
        spaces += lead.startswith(" ") and len(lead) >= 2
        if "\t" not in lead and len(lead) > previous:
            steps[len(lead) - previous] += 1
        previous = len(lead) if "\t" not in lead else previous
    if tabs > spaces or (tabs == spaces == 0 and language == "go"):
        return "\t"
    width = next((step for step, _ in steps.most_common() if 2 <= step <= 8), 4)
    return " " * width


class _Doc:
    """The text, its UTF-8 bytes and its tree together, with the lookups the cuts need."""

    def __init__(self, text: str, source: bytes, root: Node | None) -> None:
        self.text, self.source, self.root = text, source, root
        self._ascii = len(text) == len(source)

    def byte(self, offset: int) -> int:
        return offset if self._ascii else len(self.text[:offset].encode())

    def offset(self, byte: int) -> int:
        return byte if self._ascii else len(self.source[:byte].decode(errors="replace"))

    def line_start(self, offset: int) -> int:
        return self.text.rfind("\n", 0, offset) + 1

    def line_end(self, offset: int) -> int:
        end = self.text.find("\n", offset)
        return len(self.text) if end < 0 else end

    def literal_at(self, byte: int) -> Node | None:
        """The string or comment the byte position is inside (strictly, or at the end of a line comment)."""
        assert self.root is not None
        for leaf in (
            self.root.descendant_for_byte_range(byte, byte),
            self.root.descendant_for_byte_range(max(byte - 1, 0), byte),
        ):
            node = leaf
            while node is not None and node.type not in _INTERPOLATION_TYPES:
                comment = "comment" in node.type
                if node.start_byte < byte < node.end_byte and (comment or node.type in _STRING_TYPES):
                    return node
                if comment and byte == node.end_byte and not self.source[node.start_byte : byte].endswith(b"*/"):
                    return node
                node = node.parent
        return None

    def starts_statement(self, offset: int) -> bool:
        """Whether the line at `offset` (a line start) begins a statement, so a cut there splits nothing."""
        if self.root is None:
            return True
        line = self.text[offset : self.line_end(offset)]
        byte = self.byte(offset + len(line) - len(line.lstrip()))
        if not line.strip():
            return self.literal_at(byte) is None
        node = self.root.descendant_for_byte_range(byte, byte + 1)
        # Climb to the largest node starting here, short of a body (a Python block starts on its first line).
        while node.parent is not None and node.parent.start_byte == node.start_byte and node.type not in _BODY_TYPES:
            node = node.parent
        return node.parent is None or node.parent.type in _BODY_TYPES

    def token_before(self, byte: int) -> Node | None:
        """The last token before `byte`, skipping whitespace and comments."""
        assert self.root is not None
        while (end := len(self.source[:byte].rstrip())) > 0:
            leaf = self.root.descendant_for_byte_range(end - 1, end)
            if "comment" not in leaf.type:
                return leaf
            byte = leaf.start_byte
        return None


def _before_code_on_line(doc: _Doc, offset: int) -> bool:
    """Only indentation before the cursor on its line, and code (not just closers) after it."""
    before = doc.text[doc.line_start(offset) : offset]
    after = doc.text[offset : doc.line_end(offset)]
    return not before.strip() and bool(after.strip(_CLOSERS + " \t\r"))


def _decide_mode(doc: _Doc, offset: int, cursor: int) -> tuple[Mode, str]:
    """The mode at the cursor, from its syntax node and its line, with the reason shown by --explain."""
    before = doc.text[doc.line_start(offset) : offset]
    after = doc.text[offset : doc.line_end(offset)]
    if doc.root is None:
        # Without a tree, string/comment/body cannot be told apart: finishing one line is the safe bet.
        return "line", "no grammar for this language, so finish the line"
    literal = doc.literal_at(cursor)
    if literal is not None and "comment" in literal.type:
        # Prose: a model completing comments mostly repeats the code around them.
        return "skip", f"inside a {literal.type.replace('_', ' ')}, where a completion is noise"
    if literal is not None:
        rest = doc.source[cursor : literal.end_byte].decode(errors="replace").rstrip("\"'`#")
        if rest.strip():
            # Between characters of a literal: whatever we insert splits a word the user already wrote.
            return "skip", "in the middle of a string literal, where a completion is noise"
        # At the end of a literal's text (a path, a message): finishing it is useful, but only on this line.
        return "line", "at the end of a string literal: finish it on this line"
    if _before_code_on_line(doc, offset):
        # `|    if x:` or `    |if x:`: the hole is a new line (or lines) before the code, not a piece of its line.
        return "block", "at the start of a line that has code after the cursor: insert whole lines before it"
    if after.strip(_CLOSERS + " \t\r"):
        # Code follows on this line: the middle must join it, so one line at most.
        return "line", "mid-line: finish the line so it joins the code after the cursor"
    token = doc.token_before(cursor)
    opener = token is not None and token.type in _OPENERS and not token.is_missing
    if before.strip():
        if opener:
            # `def f():|` or `if (x) {|`: the body comes next, on new lines.
            return "block", f"right after a block-opening `{token.type}`: the body comes next"
        # The line has code and nothing follows it: finish this statement.
        return "line", "at the end of a non-empty line: finish it"
    if opener:
        # An empty body: `def f():` / `{` just above the cursor.
        return "block", f"on the line after a block-opening `{token.type}`: write the body"
    body = doc.root.named_descendant_for_byte_range(cursor, cursor)
    while body is not None and body.type not in _BODY_TYPES:
        body = body.parent
    if body is None or body.parent is None:
        # Between top-level definitions: a new definition or statement may start.
        return "block", "on an empty line at the top level: a new statement or definition may start"
    # An empty line inside a body: a new statement (or several) may start here.
    return "block", f"on an empty line inside a {body.type.replace('_', ' ')}: new statements may start"


def _cut_suffix(doc: _Doc, offset: int, budget: int, count: Callable[[str], int], warnings: list[str]) -> int:
    """End of the suffix: whole lines within the budget, ending before a line that starts a statement."""
    text = doc.text
    end = doc.line_end(offset)
    used = count(text[offset:end])
    if used > budget:
        warnings.append(f"line {text.count(chr(10), 0, offset) + 1} is longer than the suffix budget: cut inside it")
        return _fit(text, offset, end, budget, count, keep_start=True)
    step = _CUT_STRIDE  # lines a count: whole chunks while they fit, then single lines
    while end < len(text):
        next_end = end
        for _ in range(step):
            next_end = doc.line_end(next_end + 1) if next_end < len(text) else next_end
        cost = count(text[end:next_end])
        if used + cost <= budget:
            used, end = used + cost, next_end
        elif step == 1:
            break
        else:
            step = 1
    last_fit = end
    # Back off to a line that ends a statement (the next line starts one), but keep the cursor's line.
    first = doc.line_end(offset)
    while last_fit > first and last_fit < len(text) and not doc.starts_statement(last_fit + 1):
        last_fit = text.rfind("\n", 0, last_fit)
    return last_fit


def _cut_prefix_with_header(
    doc: _Doc, offset: int, cursor: int, budget: int, count: Callable[[str], int], warnings: list[str]
) -> tuple[int, str]:
    """Start of the contiguous prefix, and header lines (imports, enclosing signatures) it would lose."""
    full = _cut_prefix(doc, offset, budget, count, warnings)
    if full == 0 or doc.root is None:
        return full, ""
    header = _header(doc, cursor, doc.byte(full))
    header_tokens = count(header) if header else 0
    if not header or header_tokens > budget // _HEADER_SHARE:
        return full, ""
    start = _cut_prefix(doc, offset, budget - header_tokens, count, [])
    # The shorter prefix may have dropped more: the header then also covers what it lost, if that still fits.
    header = _header(doc, cursor, doc.byte(start))
    if count(header + doc.text[start:offset]) > budget:
        return full, ""
    return start, header


def _cut_prefix(doc: _Doc, offset: int, budget: int, count: Callable[[str], int], warnings: list[str]) -> int:
    """Start of the prefix: whole lines within the budget, at a statement start, moving in stride-sized steps.

    Lines are taken in chunks that end on line numbers divisible by `_CUT_STRIDE`, so as the user types, the
    start stays put until a whole chunk no longer fits: the prompt (and the model's KV cache of it) is stable.
    """
    text = doc.text
    start = doc.line_start(offset)
    used = count(text[start:offset])
    if used > budget:
        warnings.append(f"line {text.count(chr(10), 0, offset) + 1} is longer than the prefix budget: cut inside it")
        return _fit(text, start, offset, budget, count, keep_start=False)
    row = text.count("\n", 0, start)
    chunk_start = start
    while chunk_start > 0:
        rows = (row - 1) % _CUT_STRIDE + 1  # lines back to the previous stride boundary
        candidate = chunk_start
        for _ in range(rows):
            candidate = doc.line_start(candidate - 1)
        cost = count(text[candidate:chunk_start])
        if used + cost > budget:
            break
        used, chunk_start, row = used + cost, candidate, row - rows
    if chunk_start == start and start > 0:
        # Not even one chunk fits: take single lines, so a small budget still gets some context.
        while start > 0 and used + (cost := count(text[doc.line_start(start - 1) : start])) <= budget:
            used, start = used + cost, doc.line_start(start - 1)
        chunk_start = start
    line = chunk_start
    while line < doc.line_start(offset) and not doc.starts_statement(line):
        line = doc.line_end(line) + 1
    return line


def _fit(text: str, start: int, end: int, budget: int, count: Callable[[str], int], keep_start: bool) -> int:
    """Cut inside one overlong line at a word boundary: the earliest start (or latest end) within budget."""
    cuts = [m.end() for m in re.finditer(r"[\s,;({\[]+", text[start:end])]
    cuts = sorted({0, end - start, *cuts})
    if keep_start:
        index = bisect.bisect_right(cuts, False, key=lambda cut: count(text[start : start + cut]) > budget)
        return start + cuts[max(index - 1, 0)]
    index = bisect.bisect_left(cuts, True, key=lambda cut: count(text[start + cut : end]) <= budget)
    return start + cuts[min(index, len(cuts) - 1)]


def _header(doc: _Doc, cursor: int, cut_byte: int) -> str:
    """Lines before `cut_byte` worth keeping: top-level imports and the headers of enclosing definitions."""
    assert doc.root is not None
    spans = [
        (n.start_byte, n.end_byte) for n in doc.root.children if n.type in _IMPORT_TYPES and n.end_byte <= cut_byte
    ]
    # Scopes enclosing the last token before the cursor: at the end of a body, the cursor is past its node.
    node = doc.token_before(cursor)
    while node is not None:
        body = node.child_by_field_name("body")
        if body is not None and node.start_byte < cut_byte and any(w in node.type for w in _SCOPE_WORDS):
            opened = doc.source[body.start_byte : body.start_byte + 1] == b"{"
            end = body.start_byte + 1 if opened else len(doc.source[: body.start_byte].rstrip())
            spans.append((node.start_byte, min(end, cut_byte)))
        node = node.parent
    lines: dict[int, str] = {}
    for start_byte, end_byte in sorted(spans):
        first = doc.line_start(doc.offset(start_byte))
        last = doc.line_end(doc.offset(max(end_byte - 1, start_byte)))
        for line_start in _line_starts(doc.text, first, last):
            lines.setdefault(line_start, doc.text[line_start : doc.line_end(line_start)])
    return "".join(line + "\n" for _, line in sorted(lines.items()))


def _line_starts(text: str, first: int, last: int) -> list[int]:
    """Offsets of the lines from the one starting at `first` up to the one containing `last`."""
    starts = [first]
    while (newline := text.find("\n", starts[-1], last)) >= 0:
        starts.append(newline + 1)
    return starts
