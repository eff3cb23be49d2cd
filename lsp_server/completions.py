"""From a request at the cursor to suggestions placed in the document as it is when the answer goes out.

Order of work for one request: supersede the document's older request, try the typing cache, wait out the
debounce (automatic triggers only, and not right after an accept), snapshot the text, fill the hole on the
engine worker, then place the result in the *current* text: characters typed since the snapshot widen the
replaced range when they match the completion; any other change drops the answer. No LSP types here: the
handlers in server.py turn suggestions into inline or list items.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tree_sitter import Tree

from engine.errors import BlockfillError, Cancelled
from lsp_server.documents import Document, Documents
from lsp_server.scheduler import Scheduler
from lsp_server.settings import ServerSettings
from lsp_server.stats import Stats
from lsp_server.typing_cache import TypingCache, typed_since

if TYPE_CHECKING:
    from engine.infill import Engine  # imports torch (seconds): loaded with the model, on the worker

log = logging.getLogger(__name__)

_ACCEPT_GRACE_S = 2.0  # the next automatic request this soon after an accept skips the debounce


@dataclass(frozen=True)
class Suggestion:
    text: str  # replaces document[start:end]
    start: int  # offsets in the document's text when the answer is sent
    end: int


@dataclass(frozen=True)
class Ask:
    """One request, as the handlers parsed it."""

    cursor: int
    automatic: bool  # Automatic inline trigger (or a completion list request): debounced, one item
    start: int = -1  # the range the answer replaces, around the cursor; -1: the cursor
    end: int = -1
    lead: str = ""  # text the answer must begin with (the completion item selected in the editor's popup)


@dataclass(frozen=True)
class _Hole:
    before: str  # document text before the cursor at the request
    after: str  # and after it
    start: int  # replaced range: document[start:end], start <= cursor <= end
    end: int
    lead: str
    tree: Tree | None  # the document's tree when it parses exactly before + after, else None


class Completer:
    def __init__(self, documents: Documents, scheduler: Scheduler, stats: Stats) -> None:
        self.documents = documents
        self.scheduler = scheduler
        self.stats = stats
        self.cache = TypingCache()
        self.engine: Engine | None = None  # None until the model is loaded; swapped on the worker only
        self._generation: dict[str, int] = {}
        self._accepted_at: dict[str, float] = {}

    def accepted(self, uri: str) -> None:
        self._accepted_at[uri] = time.perf_counter()

    def forget(self, uri: str) -> None:
        """The document closed: drop its state and stop its work."""
        self.scheduler.stop(uri)
        self.cache.forget(uri)
        self._generation.pop(uri, None)
        self._accepted_at.pop(uri, None)

    async def complete(self, document: Document, text: str, ask: Ask, settings: ServerSettings) -> list[Suggestion]:
        """Suggestions for `ask` in `text` (the document's text when the request arrived), best first.

        Offsets in the suggestions are in the document's text when they are returned. Empty when there is
        nothing (yet) worth showing.
        """
        began = time.perf_counter()
        uri = document.uri
        generation = self._generation[uri] = self._generation.get(uri, 0) + 1
        self.scheduler.stop(uri)  # the user moved on: stop the older request's work now, not after debounce
        if document.too_large or not settings.completes(document.language):
            return []
        start, end = (ask.cursor, ask.cursor) if ask.start < 0 else (ask.start, ask.end)
        if not ask.lead and document.text is text:  # (else edits arrived since: the model path reconciles)
            rests = self.cache.lookup(uri, text, ask.cursor, alternatives=not ask.automatic)
            if rests:
                self.stats.cache_hits.append(time.perf_counter() - began)
                self.stats.shown += 1
                return [Suggestion(rest, ask.cursor, ask.cursor) for rest in rests]
        if self.engine is None:
            return []
        unchanged = document.text is text and not ask.lead and start == end == ask.cursor
        tree = document.parsed.tree.copy() if unchanged and document.parsed.tree is not None else None
        hole = _Hole(text[: ask.cursor], text[ask.cursor :], start, end, ask.lead, tree)
        waited = 0.0
        just_accepted = time.perf_counter() - self._accepted_at.pop(uri, -1e9) < _ACCEPT_GRACE_S
        if ask.automatic and settings.debounce_ms and not just_accepted:
            await asyncio.sleep(settings.debounce_ms / 1000)
            waited = settings.debounce_ms / 1000
            if self._generation.get(uri) != generation:
                return []  # a newer request for this document arrived while we waited
        count = 1 if ask.automatic else max(1, settings.alternatives)
        language = document.language
        try:
            texts, model_seconds, engine_seconds, mode = await self.scheduler.run(
                uri, lambda stop: self._fill(hole, language, count, stop)
            )
        except Cancelled:
            return []
        except BlockfillError as err:  # a binary file, a context the engine refuses: nothing to show
            log.info("no completion for %s: %s", uri, err)
            return []
        current = self.documents.find(uri)
        typed = typed_since(current.text, hole.before, hole.after) if current is not None else None
        if typed is None or (typed and hole.lead):
            return []  # the document changed other than by typing at the cursor: the answer would be wrong
        if not hole.lead:
            self.cache.remember(uri, hole.before, hole.after, texts, alternatives=not ask.automatic)
        end = hole.end + len(typed)
        suggestions = [Suggestion(hole.lead + t, hole.start, end) for t in texts if t.startswith(typed)]
        total = time.perf_counter() - began - waited
        self.stats.record_answer(total, model_seconds, engine_seconds, mode)
        self.stats.shown += bool(suggestions)
        return suggestions

    def _fill(
        self, hole: _Hole, language: str | None, count: int, should_stop: Callable[[], bool]
    ) -> tuple[list[str], float, float, str]:
        """On the worker: `count` completions of the hole in one batched run (one seed each).

        Returns the distinct texts, best first, the denoising seconds, the engine's wall seconds and the mode.
        """
        from engine.infill import InfillRequest  # already imported by the loaded engine; see TYPE_CHECKING

        engine = self.engine
        if engine is None:
            return [], 0.0, 0.0, "skip"
        cursor = len(hole.before)
        request = InfillRequest(
            hole.before[: hole.start] + hole.lead, hole.after[hole.end - cursor :], language, tree=hole.tree
        )
        began = time.perf_counter()
        try:
            completions = engine.complete(
                [request] * count, [engine.config.seed + i for i in range(count)], should_stop
            )
        finally:
            self.stats.last_engine_seconds = time.perf_counter() - began
        texts = list(dict.fromkeys(c.text for c in completions if c.text))
        mode = completions[0].context.mode if completions else "skip"
        return texts, sum(c.seconds for c in completions), self.stats.last_engine_seconds, mode
