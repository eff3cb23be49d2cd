"""documents.py without a server: positions in each encoding, incremental edits against the full text."""

import random

import pytest
from lsprotocol import types

from engine.context import ParsedDocument
from lsp_server.documents import DocumentError, Documents

UTF8, UTF16, UTF32 = types.PositionEncodingKind.Utf8, types.PositionEncodingKind.Utf16, types.PositionEncodingKind.Utf32
TEXT = "x = '😀é'\ny = 1\r\nz"


def _document(text: str = TEXT, encoding: str = UTF16, language: str = "python", max_chars: int = 10**6):
    documents = Documents(encoding)
    return documents, documents.open(types.TextDocumentItem("file:///a.py", language, 1, text), max_chars)


@pytest.mark.parametrize(
    ("encoding", "character", "offset"),
    [
        (UTF16, 5, 5),  # just before the emoji
        (UTF16, 7, 6),  # after the emoji: two UTF-16 units, one code point
        (UTF16, 6, 5),  # inside the surrogate pair: the emoji's start
        (UTF16, 8, 7),  # after é
        (UTF8, 9, 6),  # the emoji is four UTF-8 bytes
        (UTF8, 11, 7),  # é is two
        (UTF32, 6, 6),
        (UTF16, 99, 8),  # past the end of the line: the line's end (LSP), before the newline
    ],
)
def test_positions_follow_the_negotiated_encoding(encoding, character, offset):
    _, document = _document(encoding=encoding)
    assert document.offset_at(types.Position(0, character)) == offset
    if character < 99 and (encoding, character) not in ((UTF16, 6),):
        assert document.position_at(offset) == types.Position(0, character)


def test_a_crlf_line_ends_before_its_carriage_return():
    _, document = _document()
    assert document.text[document.offset_at(types.Position(1, 50)) :].startswith("\r\n")


@pytest.mark.parametrize("position", [types.Position(3, 0), types.Position(30, 2)])
def test_a_position_outside_the_document_is_an_error(position):
    _, document = _document()
    with pytest.raises(DocumentError, match="outside"):
        document.offset_at(position)


def _change(documents, version, start, end, text):
    documents.change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri="file:///a.py", version=version),
            [types.TextDocumentContentChangePartial(types.Range(start, end), text)],
        )
    )


def test_random_incremental_edits_match_the_full_text_and_a_fresh_parse():
    rng = random.Random(0)
    documents, document = _document("def f(x):\n    return x\n", UTF16)
    expected = document.text
    pieces = ["\n", "    ", "y = 1\n", "😀", "(", ")", "if x:\n        ", "", "é"]
    for version in range(2, 200):
        start, end = sorted(rng.randint(0, len(expected)) for _ in range(2))
        new = rng.choice(pieces)
        _change(documents, version, document.position_at(start), document.position_at(end), new)
        expected = expected[:start] + new + expected[end:]
        assert document.text == expected
        assert document.version == version
        assert document.line_starts == [0] + [i + 1 for i, c in enumerate(expected) if c == "\n"]
    fresh = ParsedDocument(expected, "python").tree
    assert str(document.parsed.tree.root_node) == str(fresh.root_node)


def test_a_change_that_does_not_apply_marks_the_document_out_of_sync_until_a_full_text():
    documents, document = _document()
    with pytest.raises(DocumentError, match="did not apply"):
        _change(documents, 2, types.Position(40, 0), types.Position(41, 0), "x")
    with pytest.raises(DocumentError, match="out of sync"):
        documents.get("file:///a.py")
    documents.change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri="file:///a.py", version=3),
            [types.TextDocumentContentChangeWholeDocument("a = 1\n")],
        )
    )
    assert documents.get("file:///a.py").text == "a = 1\n"


def test_a_document_never_opened_is_an_error():
    documents, _ = _document()
    with pytest.raises(DocumentError, match="not open"):
        documents.get("file:///never.py")


def test_a_large_document_is_kept_in_sync_without_a_tree():
    documents, document = _document("x = 1\n" * 100, max_chars=50)
    assert document.too_large and document.parsed.tree is None
    _change(documents, 2, types.Position(0, 0), types.Position(0, 1), "y")
    assert document.text.startswith("y = 1\n")
