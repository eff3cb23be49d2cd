"""Before the model is ready, and when it cannot load: quick empty answers, one message saying what to do."""

import time

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from tests.lsp.conftest import SERVER, inline_params, open_document, start, toy_document, wait_for_state

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_lsp.fixture(config=SERVER, loop_scope="session")
async def broken(lsp_client: LanguageClient, tmp_path):
    lsp_client.init_result = await start(
        lsp_client,
        client_capabilities("visual_studio_code"),
        {"model": str(tmp_path / "no-such-model"), "device": "cpu", "acceptanceLog": ""},
    )
    yield
    await lsp_client.shutdown_session()


async def test_requests_before_the_model_is_ready_are_answered_empty_and_a_load_error_is_shown_once(broken):
    text, character = toy_document()
    uri = open_document(broken, text)
    began = time.perf_counter()
    result = await broken.text_document_inline_completion_async(inline_params(uri, 0, character, invoked=True))
    assert not result.items and time.perf_counter() - began < 1.0
    assert broken.statuses[0]["state"] == "loading"

    status = await wait_for_state(broken, "error")
    assert "does not exist" in status["message"]
    for _ in range(2):
        result = await broken.text_document_inline_completion_async(inline_params(uri, 0, character, invoked=True))
        assert not result.items
    shown = [m for m in broken.messages if "could not load model" in m.message]
    assert len(shown) == 1 and shown[0].type == types.MessageType.Error
    assert "blockfill.model" in shown[0].message  # says what to do
