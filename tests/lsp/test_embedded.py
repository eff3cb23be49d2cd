"""The shipped model behind the real server: what a user gets from `blockfill serve` with no options.

The rest of tests/lsp runs on the toy checkpoint because its answers are predictable; this test checks the
default path end to end on blockfill-tiny (whose suggestions are not yet good, so only their shape is checked).
"""

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from engine.models.loading import EMBEDDED_DIR
from tests.lsp.conftest import SERVER, inline_params, open_document, start, stats, wait_for_state

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.skipif(not (EMBEDDED_DIR / "model.safetensors").exists(), reason="embedded model not shipped"),
]

TEXT = 'def read_lines(path):\n    """Return the lines of a file."""\n    with open(path) as handle:\n        \n'


@pytest_lsp.fixture(config=SERVER, loop_scope="session")
async def embedded(lsp_client: LanguageClient, tmp_path):
    options = {"device": "cpu", "acceptanceLog": str(tmp_path / "accepted.jsonl")}  # model: the default
    lsp_client.init_result = await start(lsp_client, client_capabilities("visual_studio_code"), options)
    yield
    await lsp_client.shutdown_session()


async def test_default_server_completes_with_blockfill_tiny(embedded):
    ready = await wait_for_state(embedded, "ready", "error")
    assert ready["state"] == "ready" and ready["model"] == "blockfill-tiny", ready
    uri = open_document(embedded, TEXT)
    result = await embedded.text_document_inline_completion_async(inline_params(uri, 3, 8, invoked=True))
    items = result.items if isinstance(result, types.InlineCompletionList) else (result or [])
    for item in items:
        assert isinstance(item.insert_text, str) and item.insert_text
        assert item.range.start == types.Position(3, 8)
    latency = (await stats(embedded))["latencyMs"]
    assert latency["count"] >= 1  # the model really ran
