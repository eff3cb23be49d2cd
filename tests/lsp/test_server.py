"""Features over the real server: capabilities, loading, inline and list completion, sync, settings, accepts."""

import json
from pathlib import Path

import pytest
from lsprotocol import types

from tests.lsp.conftest import change, configure, inline_params, open_document, stats, toy_document

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_initialize_advertises_inline_completion_completion_and_incremental_sync(client):
    capabilities = client.init_result.capabilities
    assert capabilities.inline_completion_provider is not None
    assert capabilities.completion_provider is not None
    assert capabilities.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    assert capabilities.text_document_sync.open_close


async def test_model_loading_is_reported_by_progress_and_status(client):
    states = [s["state"] for s in client.statuses]
    assert states[0] == "loading" and "ready" in states
    assert client.statuses[-1]["model"]
    (reports,) = client.progress_reports.values()  # both clients support work-done progress
    assert isinstance(reports[0], types.WorkDoneProgressBegin) and "Loading model" in reports[0].title
    assert isinstance(reports[-1], types.WorkDoneProgressEnd) and reports[-1].message == "ready"


async def test_inline_completion_fills_the_hole_with_its_exact_range(client):
    text, character = toy_document("golf")
    uri = open_document(client, text)
    result = await client.text_document_inline_completion_async(inline_params(uri, 0, character))
    (item,) = result.items  # Automatic: the best item only
    assert item.insert_text == "golf"
    assert item.range == types.Range(types.Position(0, character), types.Position(0, character))
    assert client.statuses[-1]["lastLatencyMs"] is not None


async def test_invoked_returns_distinct_alternatives_from_one_run(client):
    text, character = toy_document("kilo")
    uri = open_document(client, text)
    result = await client.text_document_inline_completion_async(inline_params(uri, 0, character, invoked=True))
    texts = [item.insert_text for item in result.items]
    assert 1 <= len(texts) <= 3 and len(set(texts)) == len(texts)
    assert "kilo" in texts


async def test_selected_completion_info_is_extended_over_its_range(client):
    text, character = toy_document("hotel")
    uri = open_document(client, text)
    params = inline_params(uri, 0, character)
    selected = types.Range(types.Position(0, character), types.Position(0, character))
    params.context.selected_completion_info = types.SelectedCompletionInfo(selected, "ho")
    result = await client.text_document_inline_completion_async(params)
    for item in result.items:
        assert item.insert_text.startswith("ho")
        assert item.range.start == selected.start


async def test_completion_list_carries_the_block_as_one_item(client):
    text, character = toy_document("golf")
    uri = open_document(client, text)
    result = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(uri), types.Position(0, character))
    )
    (item,) = result.items
    assert result.is_incomplete
    assert item.label == "golf" and item.text_edit.new_text == "golf"
    assert item.text_edit.range.start == types.Position(0, character)


async def test_incremental_edits_keep_the_document_and_tree_in_step(client):
    text, character = toy_document("echo")
    uri = open_document(client, "")
    for version, line in enumerate(text.splitlines(keepends=True), start=2):  # typed line by line
        row = version - 2
        change(client, uri, version, (row, 0), (row, 0), line)
    change(client, uri, 10, (0, character), (0, character), "xx")  # a typo, then its deletion
    change(client, uri, 11, (0, character), (0, character + 2), "")
    result = await client.text_document_inline_completion_async(inline_params(uri, 0, character, invoked=True))
    assert "echo" in [item.insert_text for item in result.items]


async def test_settings_change_live_and_unknown_keys_are_reported(client):
    uri = open_document(client, toy_document()[0])
    await configure(client, {"languages": ["go"], "noSuchSetting": 1})
    assert any("noSuchSetting" in m.message for m in client.messages)
    result = await client.text_document_inline_completion_async(inline_params(uri, 0, 8, invoked=True))
    assert not result.items  # python is no longer enabled
    await configure(client, {"languages": ["*"]})


async def test_accepts_are_kept_locally_for_the_acceptance_rate(client, tmp_path_factory):
    before = await stats(client)
    uri = open_document(client, toy_document()[0])
    client.protocol.notify("blockfill/accepted", {"uri": uri, "text": "golf"})
    client.protocol.notify("blockfill/accepted", {"uri": uri, "text": "go", "partial": True})
    client.protocol.notify("blockfill/accepted", {"uri": uri})  # malformed: logged, not counted
    after = await stats(client)
    assert after["accepted"] == before["accepted"] + 1 and after["partial"] == before["partial"] + 1
    logs = Path(tmp_path_factory.getbasetemp()).glob("state*/accepted.jsonl")
    rows = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
    assert any(r["language"] == "python" and r["chars"] == 4 and not r["partial"] for r in rows)
    assert any(r["chars"] == 2 and r["partial"] for r in rows)
