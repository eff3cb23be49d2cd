"""The default model behind the real server: what a user gets from `blockfill serve` with no options.

The rest of tests/lsp runs on the toy checkpoint because its answers are predictable; this test checks the
default path end to end on blockfill-coder (the base setup.sh fetches, with the shipped adapter): an editor's
request in a small function's empty body must come back with code that makes the function's own check pass.
"""

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from engine.models.catalog import CATALOG, is_installed
from tests.lsp.conftest import SERVER, inline_params, open_document, start, stats, wait_for_state

BASE = CATALOG[CATALOG["blockfill-coder"].base]
pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.skipif(
        not is_installed(BASE),
        reason=f"{BASE.name} is not installed: `blockfill models fetch blockfill-coder` (setup.sh does it)",
    ),
]

BEFORE = 'def add(a, b):\n    """Return the sum of a and b."""\n    return '
AFTER = "\n\n\nassert add(2, 3) == 5\n"


@pytest_lsp.fixture(config=SERVER, loop_scope="session")
async def default_server(lsp_client: LanguageClient, tmp_path):
    options = {"device": "cpu", "acceptanceLog": str(tmp_path / "accepted.jsonl")}  # model: the default
    lsp_client.init_result = await start(lsp_client, client_capabilities("visual_studio_code"), options)
    yield
    await lsp_client.shutdown_session()


async def test_default_server_completes_a_function_so_that_its_check_passes(default_server):
    ready = await wait_for_state(default_server, "ready", "error")
    assert ready["state"] == "ready" and ready["model"] == "blockfill-coder", ready
    uri = open_document(default_server, BEFORE + AFTER)
    line, character = BEFORE.count("\n"), len(BEFORE.rsplit("\n", 1)[1])
    result = await default_server.text_document_inline_completion_async(inline_params(uri, line, character))
    items = result.items if isinstance(result, types.InlineCompletionList) else (result or [])
    assert items, "the default model showed nothing"
    item = items[0]
    assert item.range.start == types.Position(line, character)
    exec(compile(BEFORE + item.insert_text + AFTER, "<buffer>", "exec"), {})  # the function's own check
    assert (await stats(default_server))["latencyMs"]["count"] >= 1
