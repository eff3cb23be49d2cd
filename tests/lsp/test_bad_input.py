"""Bad input: each gets an LSP error or an empty answer, and the server answers the next request."""

import time

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams, JsonRpcMethodNotFound

from tests.lsp.conftest import change, inline_params, open_document, raw_request, toy_document

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _still_serving(client) -> None:
    text, character = toy_document("golf")
    uri = open_document(client, text)
    result = await client.text_document_inline_completion_async(inline_params(uri, 0, character, invoked=True))
    assert "golf" in [item.insert_text for item in result.items]


async def test_malformed_json_is_answered_with_a_parse_error_and_ignored(client):
    body = b'{"jsonrpc": "2.0", "id": 1, "method": '
    client.protocol.writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    await _still_serving(client)


async def test_an_unknown_method_is_method_not_found(client):
    with pytest.raises(JsonRpcMethodNotFound):
        await raw_request(client, "blockfill/noSuchMethod", {}, "unknown-method")
    await _still_serving(client)


async def test_params_that_do_not_fit_the_method_are_invalid_params(client):
    params = {"textDocument": {"uri": "file:///x.py"}, "position": {"line": -1, "character": 0}}
    with pytest.raises(JsonRpcInvalidParams, match="inlineCompletion"):
        await raw_request(client, types.TEXT_DOCUMENT_INLINE_COMPLETION, params, "bad-params")
    await _still_serving(client)


async def test_a_character_past_the_line_end_means_the_line_end_and_a_line_past_the_end_is_an_error(client):
    text, character = toy_document("golf")
    uri = open_document(client, text)
    result = await client.text_document_inline_completion_async(inline_params(uri, 0, 500, invoked=True))
    assert all(item.range.start == types.Position(0, character) for item in result.items)
    with pytest.raises(JsonRpcInvalidParams, match="outside"):
        await client.text_document_inline_completion_async(inline_params(uri, 40, 0))
    await _still_serving(client)


async def test_positions_count_in_the_negotiated_encoding_across_surrogate_pairs(client):
    prefix = "label = '😀 café 𝔘'\nvalue = "
    text = prefix + "\ngolf = value\n"
    uri = open_document(client, text)
    encoding = client.init_result.capabilities.position_encoding or types.PositionEncodingKind.Utf16
    assert encoding == {"neovim": "utf-8", "visual_studio_code": "utf-16"}[client.client_kind]
    line = "label = '😀 café 𝔘'"
    units = len(line.encode()) if encoding == "utf-8" else len(line.encode("utf-16-le")) // 2
    result = await client.text_document_inline_completion_async(inline_params(uri, 0, units, invoked=True))
    for item in result.items:  # the range is where the cursor is, in the same units
        assert item.range.start == types.Position(0, units)
    result = await client.text_document_inline_completion_async(inline_params(uri, 1, 8, invoked=True))
    assert all(item.range.start == types.Position(1, 8) for item in result.items)


async def test_a_document_never_opened_is_invalid_params(client):
    with pytest.raises(JsonRpcInvalidParams, match="not open"):
        await client.text_document_inline_completion_async(inline_params("file:///never/opened.py", 0, 0))
    await _still_serving(client)


async def test_a_10_mb_file_gets_an_empty_answer_quickly(client):
    text = "x = 1\n" * (10 * 1024 * 1024 // 6)
    uri = open_document(client, text)
    began = time.perf_counter()
    result = await client.text_document_inline_completion_async(inline_params(uri, 5, 4, invoked=True))
    assert not result.items and time.perf_counter() - began < 5
    change(client, uri, 2, (0, 0), (0, 1), "y")  # and it is still kept in sync
    await _still_serving(client)


async def test_a_binary_file_gets_an_empty_answer(client):
    uri = open_document(client, "value = \x00\x01\x02\ngolf = value\n")
    result = await client.text_document_inline_completion_async(inline_params(uri, 0, 8, invoked=True))
    assert not result.items
    await _still_serving(client)


async def test_an_unknown_language_id_completes_without_a_grammar(client):
    text, character = toy_document("golf")
    uri = open_document(client, text, language="klingon")
    result = await client.text_document_inline_completion_async(inline_params(uri, 0, character, invoked=True))
    assert "golf" in [item.insert_text for item in result.items]  # line mode, plain-text cuts


async def test_a_change_that_does_not_apply_is_reported_and_a_full_text_resyncs(client):
    text, character = toy_document("golf")
    uri = open_document(client, text)
    change(client, uri, 2, (70, 0), (71, 0), "x")
    with pytest.raises(JsonRpcInvalidParams, match="out of sync"):
        await client.text_document_inline_completion_async(inline_params(uri, 0, character))
    assert any("did not apply" in m.message for m in client.log_messages)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri=uri, version=3),
            [types.TextDocumentContentChangeWholeDocument(text)],
        )
    )
    result = await client.text_document_inline_completion_async(inline_params(uri, 0, character, invoked=True))
    assert "golf" in [item.insert_text for item in result.items]
