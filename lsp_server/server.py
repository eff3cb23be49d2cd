"""blockfill's language server (pygls): inline completions from the block-diffusion engine.

LSP methods it implements:
- `initialize` (answers at once: the model loads after `initialized`), `initialized`, `shutdown`, `exit`
- `textDocument/didOpen`, `textDocument/didChange` (incremental; each edit is a tree.edit + reparse),
  `textDocument/didClose`
- `textDocument/inlineCompletion` (LSP 3.18): Automatic -> the best item, debounced; Invoked -> up to
  `alternatives` items from one batched run; honours `selectedCompletionInfo`; every item has its exact range
- `textDocument/completion`: the same completion as one list item, for clients without inline completion
- `workspace/didChangeConfiguration`: settings (engine and server) change live; bad keys are reported
- `$/cancelRequest`: pygls cancels the handler's task; the engine stops between two denoising steps
- `blockfill/accepted` (client -> server notification): `{uri, text, partial?}`, what the user accepted
- `blockfill/stats` (client -> server request): latency and acceptance figures, computed locally
Sent to the client: `blockfill/status` `{state: loading|ready|busy|error, model, lastLatencyMs, message}`,
`window/workDoneProgress/create` + `$/progress` while loading, `window/showMessage` (once per problem, saying
what to do), `window/logMessage`.

Design: handlers are small and run on the event loop; the model runs only on the scheduler's worker thread.
Bad input never takes the server down: a request gets an LSP error or an empty answer, a notification a
logged warning, and the next request is served; after a framing error, framing.py finds the next message.
"""

import asyncio
import contextlib
import json
import logging
import sys
import threading
from dataclasses import dataclass
from typing import Any, BinaryIO

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcParseError
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from engine.config import EngineConfig
from engine.errors import BlockfillError
from lsp_server import __version__
from lsp_server.completions import Ask, Completer, Suggestion
from lsp_server.documents import Document, DocumentError, Documents
from lsp_server.framing import serve
from lsp_server.scheduler import Scheduler
from lsp_server.settings import RELOAD_KEYS, Settings, apply_settings, section
from lsp_server.stats import Stats

log = logging.getLogger(__name__)

STATUS = "blockfill/status"
ACCEPTED = "blockfill/accepted"
STATS = "blockfill/stats"
_PREVIEW_CHARS = 60  # completion-list label: the first line, cut to this
_MAX_PINNED = 64  # pinned requests kept at most (each holds a text alive)
_PINNED_METHODS = frozenset({types.TEXT_DOCUMENT_INLINE_COMPLETION, types.TEXT_DOCUMENT_COMPLETION})


@dataclass(frozen=True)
class _Pinned:
    """A completion request's document state when it arrived (strings are immutable: the text is not copied)."""

    document: Document
    text: str
    cursor: int
    selected: tuple[int, int] | None  # selectedCompletionInfo's range, as offsets


class _Protocol(LanguageServerProtocol):
    """pygls' protocol minus its document store, answering malformed requests instead of dropping them."""

    # documents.py owns didOpen/didChange/didClose: pygls' built-ins would keep a second copy of every text.
    lsp_text_document__did_open = None
    lsp_text_document__did_change = None
    lsp_text_document__did_close = None

    def _handle_request(self, msg_id: Any, method_name: str, params: Any) -> None:
        # pygls starts an async handler on a later loop turn, after didChange messages read in the same batch:
        # pin the text and position now, while they still mean what the client meant.
        if method_name in _PINNED_METHODS:
            self._server.pin(msg_id, params)
        super()._handle_request(msg_id, method_name, params)

    def structure_message(self, data: Any) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as err:
            # pygls logs and drops a request whose params do not fit; the client would wait forever.
            if isinstance(data, dict) and "method" in data and isinstance(data.get("id"), int | str):
                problem = JsonRpcInvalidParams(f"invalid params for {data['method']}: {err.__cause__ or err}")
                self._send_response(data["id"], error=problem.to_response_error())
            raise


class BlockfillServer(LanguageServer):
    def __init__(self, settings: Settings) -> None:
        super().__init__("blockfill", __version__, protocol_cls=_Protocol, max_workers=2)
        self.settings = settings
        self.documents = Documents()
        self.scheduler = Scheduler(on_busy=self._worker_busy)
        self.stats = Stats(settings.server.acceptance_log)
        self.completer = Completer(self.documents, self.scheduler, self.stats)
        self.state = "loading"
        self.message: str | None = None
        self._shown: set[str] = set()
        self._problems: list[str] = []  # settings problems found before the client could be told
        self._loads = 0
        self._pinned: dict[Any, _Pinned | DocumentError] = {}

    def pin(self, msg_id: Any, params: Any) -> None:
        try:
            document = self.documents.get(params.text_document.uri)
            selected = getattr(getattr(params, "context", None), "selected_completion_info", None)
            span = None
            if selected is not None:
                span = (document.offset_at(selected.range.start), document.offset_at(selected.range.end))
            self._pinned[msg_id] = _Pinned(document, document.text, document.offset_at(params.position), span)
        except DocumentError as err:
            self._pinned[msg_id] = err
        while len(self._pinned) > _MAX_PINNED:  # requests cancelled before their handler ran never unpin
            del self._pinned[next(iter(self._pinned))]

    def pinned(self) -> _Pinned:
        """The current request's pinned state; raises InvalidParams for a document or position that did not fit."""
        pinned = self._pinned.pop(self.protocol.msg_id, None)
        if pinned is None:
            raise JsonRpcInvalidParams("request state lost: more than 64 requests in flight")
        if isinstance(pinned, DocumentError):
            raise JsonRpcInvalidParams(str(pinned)) from pinned
        return pinned

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """pygls' start_io with framing.serve as the reader, so a wrong Content-Length does not leave it deaf."""
        self._stop_event = threading.Event()
        stdin = stdin or sys.stdin.buffer
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))

        async def read(size: int) -> bytes:
            return await asyncio.get_running_loop().run_in_executor(self.thread_pool, stdin.read1, size)

        try:
            asyncio.run(serve(read, self.protocol, self._stop_event, self.report_server_error))
        except BrokenPipeError:
            log.error("the client closed the connection: shutting down")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.shutdown()

    def start_tcp(self, host: str, port: int) -> None:
        """pygls' start_tcp with framing.serve; a connection that ends without `shutdown` is closed and the server
        listens for the next one (pygls stops after the first, however it ended)."""
        self._stop_event = stop = threading.Event()

        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.protocol.set_writer(writer)
            try:
                await serve(reader.read, self.protocol, stop, self.report_server_error)
            except OSError as err:
                log.warning("connection lost: %s", err)
            finally:
                writer.close()
            if self.protocol._shutdown:  # it answers nothing more: let the process end
                self.shutdown()
            else:
                log.warning("the client went away without shutdown: listening for the next one")

        async def listen() -> None:
            self._server = await asyncio.start_server(connection, host, port)
            async with self._server:
                await self._server.serve_forever()

        with contextlib.suppress(asyncio.CancelledError):  # shutdown() closed the listener
            asyncio.run(listen())

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Protocol-level problems are logged, not shown: the user cannot act on them, the client author can."""
        log.warning("protocol error (%s): %s", getattr(source, "__name__", source), error)
        if isinstance(error, json.JSONDecodeError):  # JSON-RPC: a parse error is answered with "id": null
            problem = JsonRpcParseError(f"not JSON: {error}")
            message = {"code": problem.code, "message": problem.message}
            self.protocol._send_data({"jsonrpc": "2.0", "id": None, "error": message})

    def send_status(self) -> None:
        engine = self.completer.engine
        seconds = self.stats.last_engine_seconds
        self.protocol.notify(
            STATUS,
            {
                "state": self.state,
                "model": engine.loaded.name if engine is not None else self.settings.engine.model,
                "lastLatencyMs": round(seconds * 1000, 1) if seconds is not None else None,
                "message": self.message,
            },
        )

    def _worker_busy(self, busy: bool) -> None:
        if self.state in ("ready", "busy") and self.completer.engine is not None:
            self.state = "busy" if busy else "ready"
            self.send_status()

    def show_once(self, message: str, kind: types.MessageType = types.MessageType.Error) -> None:
        """window/showMessage, at most once per distinct message: errors that repeat per keystroke would nag."""
        log.warning("%s", message)
        if message not in self._shown:
            self._shown.add(message)
            self.window_show_message(types.ShowMessageParams(kind, message))

    def report_problems(self, problems: list[str]) -> None:
        for problem in problems:
            self.show_once(f"blockfill: setting ignored: {problem}", types.MessageType.Warning)

    async def load_model(self) -> None:
        """Load (or reload) the model on the worker, with $/progress where the client supports it."""
        self._loads += 1
        config = self.settings.engine
        self.completer.engine = None
        self.state, self.message = "loading", None
        self.send_status()
        token = await self._begin_progress(f"blockfill-load-{self._loads}", f"Loading model {config.model}")

        def load():  # torch comes in with the engine: seconds, so on the worker, never at startup
            from engine.infill import Engine

            return Engine(config)

        try:
            engine = await self.scheduler.call(load)
        except BlockfillError as err:
            self.state, self.message = "error", str(err)
            self.show_once(
                f"blockfill could not load model {config.model!r}: {err}. Set blockfill.model to a name from "
                "`blockfill models list`, a checkpoint directory or a cached hub id, or run `blockfill infill "
                "--model ...` to check it."
            )
        except Exception as err:  # a bug or a broken install: say so, keep serving (with empty answers)
            log.exception("loading %s failed", config.model)
            self.state, self.message = "error", f"{type(err).__name__}: {err}"
            self.show_once(f"blockfill could not load model {config.model!r}: {self.message}; see the server log.")
        else:
            if _same_model(self.settings.engine, config):  # else a newer load is queued: it finishes the job
                if self.settings.engine != config:  # other settings changed while loading
                    engine = await self.scheduler.call(lambda: type(engine)(self.settings.engine, engine.loaded))
                self.completer.engine, self.state = engine, "ready"
        if token is not None:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=self.state))
        self.send_status()

    async def _begin_progress(self, token: str, title: str) -> str | None:
        window = self.client_capabilities.window
        if window is None or not window.work_done_progress:
            return None
        try:
            await asyncio.wait_for(self.work_done_progress.create_async(token), timeout=5)
        except (JsonRpcException, TimeoutError) as err:
            log.info("client refused a progress token: %s", err)
            return None
        self.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, cancellable=False))
        return token

    async def configure(self, overrides: Any) -> None:
        """Apply settings; reload the model if what is loaded changed, else rebuild the engine around it."""
        before = self.settings
        self.settings, problems = apply_settings(before, overrides)
        self.report_problems(problems)
        self.stats.acceptance_log = self.settings.server.acceptance_log
        engine = self.completer.engine
        if not _same_model(before.engine, self.settings.engine) or (engine is None and self.state == "error"):
            await self.load_model()
        elif engine is not None and before.engine != self.settings.engine:
            config = self.settings.engine
            rebuilt = await self.scheduler.call(lambda: type(engine)(config, loaded=engine.loaded))
            self.completer.engine = rebuilt


def _same_model(a: EngineConfig, b: EngineConfig) -> bool:
    return all(getattr(a, key) == getattr(b, key) for key in RELOAD_KEYS)


def _range(document: Document, start: int, end: int) -> types.Range:
    return types.Range(document.position_at(start), document.position_at(end))


_FEATURES: list[tuple[str, Any, Any]] = []  # (method, options, handler), registered by create_server


def _feature(method: str, options: Any = None):
    def register(handler):
        _FEATURES.append((method, options, handler))
        return handler

    return register


@_feature(types.INITIALIZE)
def initialize(ls: BlockfillServer, params: types.InitializeParams) -> None:
    ls.documents.encoding = ls.workspace.position_encoding or types.PositionEncodingKind.Utf16
    if params.initialization_options is not None:
        ls.settings, problems = apply_settings(ls.settings, params.initialization_options)
        ls._problems.extend(problems)
        ls.stats.acceptance_log = ls.settings.server.acceptance_log


@_feature(types.INITIALIZED)
async def initialized(ls: BlockfillServer, params: types.InitializedParams) -> None:
    ls.report_problems(ls._problems)
    ls._problems.clear()
    await ls.load_model()


@_feature(types.SHUTDOWN)
def shutdown(ls: BlockfillServer, params: None) -> None:
    ls.scheduler.shutdown()


@_feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: BlockfillServer, params: types.DidOpenTextDocumentParams) -> None:
    document = ls.documents.open(params.text_document, ls.settings.server.max_document_chars)
    ls.completer.forget(document.uri)
    if document.too_large:
        log.info("%s has %d characters: kept in sync, never completed", document.uri, len(document.text))


@_feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: BlockfillServer, params: types.DidChangeTextDocumentParams) -> None:
    try:
        ls.documents.change(params)
    except DocumentError as err:
        ls.window_log_message(types.LogMessageParams(types.MessageType.Warning, f"blockfill: {err}"))


@_feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: BlockfillServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.documents.close(params.text_document.uri)
    ls.completer.forget(params.text_document.uri)


@_feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def inline_completion(ls: BlockfillServer, params: types.InlineCompletionParams) -> types.InlineCompletionList:
    pinned = ls.pinned()
    ask = Ask(pinned.cursor, automatic=params.context.trigger_kind == types.InlineCompletionTriggerKind.Automatic)
    if pinned.selected is not None and pinned.selected[0] <= pinned.cursor <= pinned.selected[1]:
        # The popup's item replaces its range; ours must begin with its text.
        ask = Ask(pinned.cursor, ask.automatic, *pinned.selected, params.context.selected_completion_info.text)
    suggestions = await ls.completer.complete(pinned.document, pinned.text, ask, ls.settings.server)
    if (current := ls.documents.find(pinned.document.uri)) is None:
        return types.InlineCompletionList(items=[])
    return types.InlineCompletionList(
        items=[types.InlineCompletionItem(s.text, range=_range(current, s.start, s.end)) for s in suggestions]
    )


def _completion_item(document: Document, suggestion: Suggestion) -> types.CompletionItem:
    """The block as one list item: it replaces the word before the cursor, so the client's filter keeps it."""
    line_start = document.text.rfind("\n", 0, suggestion.start) + 1
    word = suggestion.start
    while word > line_start and (document.text[word - 1].isalnum() or document.text[word - 1] == "_"):
        word -= 1
    text = document.text[word : suggestion.start] + suggestion.text
    first_line = text.split("\n", 1)[0]
    label = first_line[:_PREVIEW_CHARS] + ("…" if len(first_line) > _PREVIEW_CHARS or "\n" in text else "")
    return types.CompletionItem(
        label=label,
        kind=types.CompletionItemKind.Snippet,
        detail="blockfill",
        documentation=types.MarkupContent(types.MarkupKind.Markdown, f"```{document.language or ''}\n{text}\n```"),
        filter_text=text,
        sort_text="0",
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(_range(document, word, suggestion.end), text),
    )


@_feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions())
async def completion(ls: BlockfillServer, params: types.CompletionParams) -> types.CompletionList:
    pinned = ls.pinned()
    suggestions = await ls.completer.complete(
        pinned.document, pinned.text, Ask(pinned.cursor, automatic=True), ls.settings.server
    )
    current = ls.documents.find(pinned.document.uri)
    items = [_completion_item(current, s) for s in suggestions[:1]] if current is not None else []
    return types.CompletionList(is_incomplete=True, items=items)


@_feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def did_change_configuration(ls: BlockfillServer, params: types.DidChangeConfigurationParams) -> None:
    await ls.configure(section(params.settings) or {})


@_feature(ACCEPTED)
def accepted(ls: BlockfillServer, params: Any) -> None:
    """Record an accept locally; the next automatic request in that document skips the debounce."""
    # pygls hands custom methods' params over as namedtuples.
    params = params._asdict() if hasattr(params, "_asdict") else params if isinstance(params, dict) else {}
    uri, text, partial = params.get("uri"), params.get("text"), params.get("partial", False)
    if not isinstance(uri, str) or not isinstance(text, str) or not isinstance(partial, bool):
        log.warning("%s needs {uri: string, text: string, partial?: boolean}; got %r", ACCEPTED, params)
        return
    document = ls.documents.find(uri)
    ls.stats.record_accept(uri, document.language if document else None, text, partial)
    ls.completer.accepted(uri)


@_feature(STATS)
def stats(ls: BlockfillServer, params: Any) -> dict[str, Any]:
    return ls.stats.summary(ls.scheduler.cancel_to_idle)


def create_server(settings: Settings | None = None) -> BlockfillServer:
    """A fresh server with every handler registered (no module-level server: tests and CLI make their own)."""
    server = BlockfillServer(settings or Settings())
    for method, options, handler in _FEATURES:
        server.feature(method, options)(handler)
    return server
