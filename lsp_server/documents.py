"""Open documents: text, tree-sitter tree (engine.context.ParsedDocument), version, and LSP position mapping.

The one place that knows how editor positions map to string offsets. LSP positions count UTF-16 code units by
default (a character outside the BMP, such as an emoji, is two), UTF-8 bytes or code points when negotiated;
Python strings index code points. A line's start offsets are kept as a list and spliced on each edit, so a
position costs a bisect and one line's scan, not a pass over the file.

pygls' own document store is bypassed (see server.py): one copy of each text, one edit path, one tree.
"""

import bisect
from dataclasses import dataclass, field

from lsprotocol import types

from engine.context import ParsedDocument


class DocumentError(Exception):
    """A request or change that does not fit the document: not open, a position past its end, out of sync."""


def _width(char: str, encoding: str) -> int:
    """Code units one character takes in the negotiated position encoding."""
    if encoding == types.PositionEncodingKind.Utf16:
        return 2 if ord(char) > 0xFFFF else 1
    if encoding == types.PositionEncodingKind.Utf8:
        return len(char.encode())
    return 1


@dataclass
class Document:
    uri: str
    language: str | None
    version: int
    parsed: ParsedDocument
    encoding: str  # negotiated position encoding: "utf-16", "utf-8" or "utf-32"
    too_large: bool  # kept in sync, never parsed nor completed
    line_starts: list[int] = field(default_factory=list)
    out_of_sync: str | None = None  # why the text can no longer be trusted; a full-text change clears it

    def __post_init__(self) -> None:
        self._index_lines()

    def _index_lines(self) -> None:
        self.line_starts = [0, *_newline_ends(self.text, 0)]

    @property
    def text(self) -> str:
        return self.parsed.text

    def offset_at(self, position: types.Position) -> int:
        """String offset of an LSP position; a character past the line's end means the end (as LSP says)."""
        if not 0 <= position.line < len(self.line_starts) or position.character < 0:
            raise DocumentError(
                f"position {position.line}:{position.character} is outside {self.uri} "
                f"({len(self.line_starts)} lines; lines and characters count from 0)"
            )
        start = self.line_starts[position.line]
        end = self.line_starts[position.line + 1] - 1 if position.line + 1 < len(self.line_starts) else len(self.text)
        line = self.text[start:end].removesuffix("\r")
        if self.encoding == types.PositionEncodingKind.Utf32 or line.isascii():
            return start + min(position.character, len(line))
        units = 0
        for index, char in enumerate(line):
            units += _width(char, self.encoding)
            if units > position.character:  # inside a surrogate pair or a UTF-8 sequence: the character's start
                return start + index
        return start + len(line)

    def position_at(self, offset: int) -> types.Position:
        line = bisect.bisect_right(self.line_starts, offset) - 1
        head = self.text[self.line_starts[line] : offset]
        if self.encoding == types.PositionEncodingKind.Utf32 or head.isascii():
            return types.Position(line, len(head))
        return types.Position(line, sum(_width(c, self.encoding) for c in head))

    def apply(self, change: types.TextDocumentContentChangeEvent) -> None:
        """Apply one didChange event: a range edit (tree.edit + incremental reparse) or the whole text."""
        if isinstance(change, types.TextDocumentContentChangeWholeDocument):
            self.parsed = ParsedDocument(change.text, None if self.too_large else self.language)
            self.out_of_sync = None
            self._index_lines()
            return
        if self.out_of_sync:
            return
        start, end = self.offset_at(change.range.start), self.offset_at(change.range.end)
        if end < start:
            raise DocumentError(f"change range ends before it starts: {change.range}")
        self.parsed.apply_edit(start, end, change.text)
        first = bisect.bisect_right(self.line_starts, start)  # first line start the edit may remove
        last = bisect.bisect_right(self.line_starts, end)
        delta = len(change.text) - (end - start)
        self.line_starts[first:] = [*_newline_ends(change.text, start), *(s + delta for s in self.line_starts[last:])]


def _newline_ends(text: str, base: int) -> list[int]:
    """`base +` the offset after each newline in `text`: the line starts it contributes."""
    ends, index = [], text.find("\n")
    while index >= 0:
        ends.append(base + index + 1)
        index = text.find("\n", index + 1)
    return ends


class Documents:
    """The open documents by URI."""

    def __init__(self, encoding: str = types.PositionEncodingKind.Utf16) -> None:
        self.encoding = encoding
        self._open: dict[str, Document] = {}

    def open(self, item: types.TextDocumentItem, max_chars: int) -> Document:
        too_large = len(item.text) > max_chars
        language = item.language_id or None
        parsed = ParsedDocument(item.text, None if too_large else language)
        document = Document(item.uri, language, item.version, parsed, self.encoding, too_large)
        self._open[item.uri] = document
        return document

    def change(self, params: types.DidChangeTextDocumentParams) -> None:
        """Apply the changes in order; one that does not fit marks the document out of sync (raised once)."""
        document = self.get(params.text_document.uri, allow_out_of_sync=True)
        document.version = params.text_document.version
        for change in params.content_changes:
            try:
                document.apply(change)
            except (DocumentError, ValueError) as err:
                document.out_of_sync = f"a change did not apply ({err})"
                raise DocumentError(
                    f"{document.uri}: {document.out_of_sync}; completions stop until the editor resends the text"
                ) from err

    def close(self, uri: str) -> None:
        self._open.pop(uri, None)

    def get(self, uri: str, allow_out_of_sync: bool = False) -> Document:
        document = self._open.get(uri)
        if document is None:
            raise DocumentError(f"{uri} is not open: send textDocument/didOpen first")
        if document.out_of_sync and not allow_out_of_sync:
            raise DocumentError(f"{uri} is out of sync: {document.out_of_sync}; reopen it or send its full text")
        return document

    def find(self, uri: str) -> Document | None:
        """The document if it is open and in sync, for late results that must not raise."""
        document = self._open.get(uri)
        return None if document is None or document.out_of_sync else document
