"""LSP base-protocol framing that finds the next message again after a wrong `Content-Length`.

pygls' own loop (`pygls.io_.run_async`) trusts the header and reads lines: after a length shorter than its body,
the body's tail sits in front of the next header, glued to it on one line that it never matches, and so on for
every later message; a longer length eats the next message the same way. The server stays alive but deaf.

Here a body that does not parse is not consumed: its bytes are searched, with what follows, for the next header
block, and whatever comes before that block is dropped and logged. A header block inside a body still arriving
means the length was too long (no JSON text holds `Content-Length: N` then a raw line break): the reader resyncs
there at once instead of waiting for bytes that may never come. Everything after framing is pygls':
`structure_message`, `handle_message` and the server's error reporter, as in `run_async`.
"""

import asyncio
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from pygls.exceptions import JsonRpcException
from pygls.protocol import JsonRPCProtocol

log = logging.getLogger(__name__)

# Other header lines (Content-Type) may come before or after it; never a line holding a second Content-Length:
# that is the next message's header, after a block that lost its blank line.
_HEADER_LINE = rb"(?![^\r\n]*Content-Length:)[A-Za-z0-9-]+:[^\r\n]*\r\n"
_BLOCK = re.compile(rb"Content-Length: *(\d{1,12}) *\r\n(?:" + _HEADER_LINE + rb")*\r\n")
_HEADER_LINES = re.compile(rb"(?:" + _HEADER_LINE + rb")*")
_START = b"Content-Length:"
_MAX_BLOCK = 64 * 1024  # a header block is never this long: past it, a half header is junk
_READ_SIZE = 1 << 20
_PREVIEW = 80


class Frames:
    """Splits a byte stream into message bodies; `reject()` a body that did not parse to search it for a header."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._body_start: int | None = None  # set while a header block is at the buffer's start
        self._length = 0
        self._scanned = 0  # the body's bytes before this were searched for a header block
        self._last = b""

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next(self) -> bytes | None:
        """The next complete body, or None until more bytes are fed."""
        while True:
            if self._body_start is None and not self._find_header():
                return None
            end = self._body_start + self._length
            if len(self._buffer) >= end:
                self._last = bytes(self._buffer[self._body_start : end])
                del self._buffer[:end]
                self._body_start = None
                return self._last
            inner = _BLOCK.search(self._buffer, self._scanned)
            if inner is None:
                self._scanned = max(self._body_start, len(self._buffer) - _MAX_BLOCK)
                return None
            log.warning("Content-Length %d runs into the next message's header", self._length)
            self._drop(inner.start())
            self._body_start = None

    def reject(self) -> None:
        """Put the last body back to be searched: its length may have been wrong."""
        self._buffer[:0] = self._last
        self._last = b""

    def _find_header(self) -> bool:
        block = _BLOCK.search(self._buffer)
        if block is None:
            start = self._buffer.rfind(_START)
            if start < 0 or len(self._buffer) - start > _MAX_BLOCK:
                start = max(len(self._buffer) - len(_START), 0)  # the end may be the beginning of a header
            self._drop(start)
            return False
        self._length = int(block[1])  # before _drop: a match reads its groups from the buffer it searched
        self._body_start = self._scanned = block.end() - block.start()
        self._drop(block.start())
        return True

    def _drop(self, count: int) -> None:
        junk = self._buffer[:count]
        if junk.strip() and not _HEADER_LINES.fullmatch(junk):
            log.warning("dropped %d bytes that are not an LSP message: %r", count, bytes(junk[:_PREVIEW]))
        del self._buffer[:count]


async def serve(
    read: Callable[[int], Awaitable[bytes]],
    protocol: JsonRPCProtocol,
    stop: threading.Event,
    report: Callable[[Exception, type[JsonRpcException]], Any],
) -> None:
    """pygls' `run_async` on `Frames`: hand each body to the protocol until `read` returns b"" (end of input)."""
    frames = Frames()
    while not stop.is_set():
        body = frames.next()
        if body is None:
            data = await read(_READ_SIZE)
            if not data:
                return
            frames.feed(data)
            continue
        try:
            protocol.handle_message(json.loads(body, object_hook=protocol.structure_message))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            frames.reject()
            report(err, JsonRpcException)
        except Exception as err:  # a malformed message (pygls' handlers catch their own errors): reported, not a crash
            log.debug("unable to handle message", exc_info=True)
            report(err, JsonRpcException)
        await asyncio.sleep(0)  # one message per loop turn, as pygls' reader
