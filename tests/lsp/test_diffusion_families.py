"""The server on a public diffusion layout: a Dream-layout checkpoint (tests/toy_dream.py) loaded by its directory
fills the toy hole over LSP, as the CLI does (tests/test_diffusion_families.py)."""

import pytest
import pytest_lsp
from pytest_lsp import LanguageClient, client_capabilities

from tests.lsp.conftest import SERVER, inline_params, open_document, start, toy_document, wait_for_state

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_lsp.fixture(config=SERVER, loop_scope="session")
async def dream(lsp_client: LanguageClient, toy_dream_checkpoint, tmp_path):
    options = {"model": str(toy_dream_checkpoint), "device": "cpu", "threads": 1, "acceptanceLog": ""}
    lsp_client.init_result = await start(lsp_client, client_capabilities("neovim"), options)
    await wait_for_state(lsp_client, "ready", "error")
    yield
    await lsp_client.shutdown_session()


async def test_a_dream_layout_checkpoint_completes_over_lsp(dream):
    assert dream.statuses[-1]["state"] == "ready", dream.statuses
    text, character = toy_document("golf")
    uri = open_document(dream, text)
    result = await dream.text_document_inline_completion_async(inline_params(uri, 0, character, invoked=True))
    assert result.items and result.items[0].insert_text == "golf"
