"""Keeping up with typing: supersede, cancel, debounce, the typing cache, answers placed in the current text."""

import asyncio
import time

import pytest
from lsprotocol import types

from tests.lsp.conftest import (
    as_dict,
    change,
    configure,
    inline_params,
    open_document,
    raw_request,
    stats,
    toy_document,
    wait_for_state,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _items_if_edited_meanwhile(client, uri: str, character: int, edit: tuple) -> list[dict]:
    """Request at the hole, then `change(*edit)` on the wire right behind the request (pytest-lsp's own
    request methods can let a later notification overtake them); the answer's items as dicts."""
    params = {
        "textDocument": {"uri": uri},
        "position": {"line": 0, "character": character},
        "context": {"triggerKind": types.InlineCompletionTriggerKind.Automatic.value},
    }
    pending = raw_request(client, types.TEXT_DOCUMENT_INLINE_COMPLETION, params, f"edited-{uri}")
    change(client, uri, 2, *edit)
    return as_dict(await pending)["items"]


async def test_typing_through_the_shown_completion_answers_from_the_cache(client):
    text, character = toy_document("golf")
    uri = open_document(client, text)
    first = await client.text_document_inline_completion_async(inline_params(uri, 0, character))
    assert [item.insert_text for item in first.items] == ["golf"]
    hits = (await stats(client))["cacheHitMs"]["count"]
    change(client, uri, 2, (0, character), (0, character), "go")
    result = await client.text_document_inline_completion_async(inline_params(uri, 0, character + 2))
    (item,) = result.items
    assert item.insert_text == "lf"
    assert item.range.start == item.range.end == types.Position(0, character + 2)
    figures = await stats(client)
    assert figures["cacheHitMs"]["count"] == hits + 1
    assert figures["cacheHitMs"]["p50"] < 1.0  # milliseconds, measured in the server


async def test_a_newer_request_for_the_document_supersedes_the_older(client):
    text, character = toy_document("lima")
    uri = open_document(client, text)
    older = client.text_document_inline_completion_async(inline_params(uri, 0, character))
    newer = client.text_document_inline_completion_async(inline_params(uri, 0, character))
    older, newer = await asyncio.gather(older, newer)
    assert not older.items
    assert [item.insert_text for item in newer.items] == ["lima"]


async def test_an_answer_covers_what_was_typed_meanwhile_and_is_dropped_after_other_edits(client):
    text, character = toy_document("india")
    uri = open_document(client, text)
    # Typed during the debounce: the answer replaces what was typed, up to the new cursor.
    (item,) = await _items_if_edited_meanwhile(client, uri, character, ((0, character), (0, character), "in"))
    assert item["insertText"] == "india"
    assert item["range"]["start"] == {"line": 0, "character": character}
    assert item["range"]["end"] == {"line": 0, "character": character + 2}

    uri = open_document(client, text)
    edit = ((1, 0), (1, 0), "# an edit away from the cursor\n")
    assert await _items_if_edited_meanwhile(client, uri, character, edit) == []


async def test_debounce_applies_to_automatic_requests_only_and_not_right_after_an_accept(client):
    await configure(client, {"debounceMs": 1000})
    try:
        text, character = toy_document("juliet")
        timings = {}
        for name, invoked, accept in [("automatic", False, False), ("invoked", True, False), ("accepted", False, True)]:
            uri = open_document(client, text)
            if accept:
                client.protocol.notify("blockfill/accepted", {"uri": uri, "text": "x"})
            began = time.perf_counter()
            await client.text_document_inline_completion_async(inline_params(uri, 0, character, invoked))
            timings[name] = time.perf_counter() - began
        assert timings["automatic"] >= 1.0
        assert timings["invoked"] < 1.0 and timings["accepted"] < 1.0, timings
    finally:
        await configure(client, {"debounceMs": 100})


async def test_cancel_request_stops_the_engine_between_two_steps(client):
    # A job that would run for many seconds: thousands of steps, never confident enough to stop early.
    await configure(client, {"maxSteps": 5000, "lineSteps": 5000, "confidenceThreshold": 0.0})
    try:
        text, character = toy_document("delta")
        uri = open_document(client, text)
        before = (await stats(client))["cancelToIdleMs"]["count"]
        client.statuses.clear()
        params = {"textDocument": {"uri": uri}, "position": {"line": 0, "character": character}}
        params["context"] = {"triggerKind": types.InlineCompletionTriggerKind.Invoked.value}
        pending = raw_request(client, types.TEXT_DOCUMENT_INLINE_COMPLETION, params, f"long-one-{uri}")
        await wait_for_state(client, "busy", timeout=30)
        await asyncio.sleep(0.3)
        began = time.perf_counter()
        client.cancel_request(types.CancelParams(id=f"long-one-{uri}"))
        with pytest.raises(Exception, match="cancel"):
            await pending
        # Statuses were cleared before the request: the first "ready" since is the worker freed by the cancel
        # (clearing again here would lose it when it arrives before the cancel's error reply is read).
        await wait_for_state(client, "ready", timeout=10)
        idle_after = time.perf_counter() - began
        figures = await stats(client)
        assert figures["cancelToIdleMs"]["count"] == before + 1
        assert figures["cancelToIdleMs"]["p95"] < 1000 and idle_after < 2.0, (figures, idle_after)
    finally:
        await configure(client, {"maxSteps": 16, "lineSteps": 8, "confidenceThreshold": 0.005})
    result = await client.text_document_inline_completion_async(inline_params(uri, 0, character, invoked=True))
    assert "delta" in [item.insert_text for item in result.items]  # and the server goes on serving
