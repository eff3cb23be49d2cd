"""The real server as a subprocess over stdio (pytest-lsp), on the toy checkpoint, for neovim and VS Code.

One server per client kind for the whole session (starting one costs seconds: torch and the model), so tests
share it: each opens its own document (`open_document` gives a fresh URI) and restores any setting it changes.
"""

import asyncio
import concurrent.futures
import itertools
import os
import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.toy_model import toy_texts

SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "lsp_server", "--log-level", "INFO"])
READY_TIMEOUT_S = 120  # the model loads after `initialized`: a torch import, a checkpoint read
_uris = itertools.count()


def toy_document(word: str = "golf") -> tuple[str, int]:
    """Python text with the toy task's hole, and the hole's (line 0) character: the toy model fills `word`."""
    prefix, _, suffix = toy_texts(word)
    return prefix + suffix, len(prefix)


def as_dict(value: object) -> object:
    """pygls hands custom methods' params and results over as namedtuples: back to plain JSON shapes."""
    if hasattr(value, "_asdict"):
        return {k: as_dict(v) for k, v in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [as_dict(v) for v in value]
    return value


async def stats(client: LanguageClient) -> dict:
    return as_dict(await client.protocol.send_request_async("blockfill/stats", {}))


def watch_status(client: LanguageClient) -> None:
    """Collect `blockfill/status` notifications on `client.statuses`."""
    client.statuses = []  # type: ignore[attr-defined]
    client.feature("blockfill/status")(lambda params: client.statuses.append(as_dict(params)))


async def wait_for_state(client: LanguageClient, *states: str, timeout: float = READY_TIMEOUT_S) -> dict:
    """The first status in one of `states`, counting those already received."""
    async with asyncio.timeout(timeout):
        while True:
            for status in client.statuses:
                if status["state"] in states:
                    return status
            await asyncio.sleep(0.05)


async def start(
    client: LanguageClient, capabilities: types.ClientCapabilities, options: dict
) -> types.InitializeResult:
    watch_status(client)
    return await client.initialize_session(
        types.InitializeParams(capabilities=capabilities, initialization_options=options)
    )


def open_document(client: LanguageClient, text: str, language: str = "python") -> str:
    uri = f"file:///work/doc{next(_uris)}.{'py' if language == 'python' else 'txt'}"
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, language, 1, text)))
    return uri


def inline_params(uri: str, line: int, character: int, invoked: bool = False) -> types.InlineCompletionParams:
    kind = types.InlineCompletionTriggerKind.Invoked if invoked else types.InlineCompletionTriggerKind.Automatic
    return types.InlineCompletionParams(
        context=types.InlineCompletionContext(trigger_kind=kind),
        text_document=types.TextDocumentIdentifier(uri),
        position=types.Position(line, character),
    )


@pytest.fixture(scope="session")
def model_dir(request) -> str:
    """The toy checkpoint; BLOCKFILL_TOY_CHECKPOINT names one trained before (training takes minutes on a busy box)."""
    return os.environ.get("BLOCKFILL_TOY_CHECKPOINT") or str(request.getfixturevalue("toy_checkpoint"))


@pytest_lsp.fixture(config=SERVER, scope="session", params=["neovim", "visual_studio_code"])
async def client(request, lsp_client: LanguageClient, model_dir, tmp_path_factory):
    """A ready server on the toy model, its initialize result on `client.init_result`."""
    options = {
        "model": model_dir,
        "device": "cpu",
        "threads": 1,
        "debounceMs": 100,
        "acceptanceLog": str(tmp_path_factory.mktemp("state") / "accepted.jsonl"),
    }
    lsp_client.init_result = await start(lsp_client, client_capabilities(request.param), options)
    lsp_client.client_kind = request.param
    await wait_for_state(lsp_client, "ready", "error")
    yield
    await lsp_client.shutdown_session()


async def configure(client: LanguageClient, settings: dict) -> None:
    """Send didChangeConfiguration the way VS Code does, and wait until the server has applied it."""
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"blockfill": settings}))
    await stats(client)  # answered after the notification: the settings are in place
    # A changed engine setting rebuilds the engine on the worker ("busy", then "ready"): wait for it, so that a
    # test reading statuses next does not take this rebuild's "ready" for the end of its own job.
    async with asyncio.timeout(READY_TIMEOUT_S):
        while client.statuses and client.statuses[-1]["state"] == "busy":
            await asyncio.sleep(0.05)


def raw_request(client: LanguageClient, method: str, params: object, msg_id: str) -> asyncio.Future:
    """Send a request exactly as given (no client-side validation); the future holds the response."""
    future = client.protocol._request_futures[msg_id] = concurrent.futures.Future()
    client.protocol._send_data({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
    return asyncio.wrap_future(future)


def change(client: LanguageClient, uri: str, version: int, start: tuple, end: tuple, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            [types.TextDocumentContentChangePartial(types.Range(types.Position(*start), types.Position(*end)), text)],
        )
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start a real server run last, so the quick unit tests report first (STYLE, pytest-lsp)."""
    items.sort(key=lambda item: bool({"client", "broken"} & set(getattr(item, "fixturenames", ()))))
