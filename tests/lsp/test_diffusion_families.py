"""The server on every public diffusion layout (tests/diffusion_checkpoints.py), each loaded by its directory over
stdio: a Dream-layout model trained on the toy task (tests/toy_dream.py) fills the hole, as the CLI does
(tests/test_diffusion_families.py); the other layouts, with random weights, load and answer a well-formed reply.
In every case the checkpoint's own Python, a trap that writes `IMPORTED` when imported, was never run."""

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from tests.diffusion_checkpoints import LAYOUTS, write_checkpoint
from tests.lsp.conftest import SERVER, inline_params, open_document, start, toy_document, wait_for_state
from tests.toy_model import WORDS, toy_texts

pytestmark = pytest.mark.asyncio(loop_scope="session")
RANDOM_LAYOUTS = sorted(set(LAYOUTS) - {"dream"})  # Dream is served trained, below
TEXTS = ["".join(toy_texts(w)) for w in WORDS] * 5


async def _serve(client: LanguageClient, directory) -> None:
    options = {"model": str(directory), "device": "cpu", "threads": 1, "acceptanceLog": ""}
    client.init_result = await start(client, client_capabilities("neovim"), options)
    await wait_for_state(client, "ready", "error")


@pytest_lsp.fixture(config=SERVER, loop_scope="session")
async def dream(lsp_client: LanguageClient, toy_dream_checkpoint):
    await _serve(lsp_client, toy_dream_checkpoint)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=SERVER, loop_scope="session", params=RANDOM_LAYOUTS)
async def random_layout(request, lsp_client: LanguageClient, tmp_path_factory):
    """A server on a random-weight checkpoint of one layout; its directory on `lsp_client.directory`."""
    lsp_client.directory = write_checkpoint(tmp_path_factory.mktemp(request.param), request.param, TEXTS)
    await _serve(lsp_client, lsp_client.directory)
    yield
    await lsp_client.shutdown_session()


async def test_a_dream_layout_checkpoint_completes_over_lsp(dream, toy_dream_checkpoint):
    assert dream.statuses[-1]["state"] == "ready", dream.statuses
    text, character = toy_document("golf")
    uri = open_document(dream, text)
    result = await dream.text_document_inline_completion_async(inline_params(uri, 0, character, invoked=True))
    assert result.items and result.items[0].insert_text == "golf"
    assert not (toy_dream_checkpoint / "IMPORTED").exists()


async def test_each_layout_loads_by_its_directory_and_answers_over_lsp(random_layout):
    assert random_layout.statuses[-1]["state"] == "ready", random_layout.statuses
    text, character = toy_document("golf")
    uri = open_document(random_layout, text)
    result = await random_layout.text_document_inline_completion_async(inline_params(uri, 0, character, True))
    assert isinstance(result, types.InlineCompletionList)  # random weights: its items may all be filtered out
    assert all(isinstance(item, types.InlineCompletionItem) and item.insert_text for item in result.items)
    # The model ran: the request's latency is reported (sent before the reply, so already received).
    assert random_layout.statuses[-1]["lastLatencyMs"] is not None, random_layout.statuses
    assert not (random_layout.directory / "IMPORTED").exists()
