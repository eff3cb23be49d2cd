"""A hostile client: malformed messages and broken framing, after which valid traffic is answered again.

pytest-lsp only writes well-formed frames, so these drive `python -m lsp_server` through raw pipes and sockets.
The fuzz is seeded: a failure sends the same bytes when rerun.
"""

import json
import logging
import queue
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

import pytest

from lsp_server.framing import Frames

SERVER = [sys.executable, "-m", "lsp_server", "--model", "blockfill-tiny"]  # the fast model: this is about framing
SEED = 1729
MESSAGES = 300
ANSWER_TIMEOUT_S = 60  # the final completion may run the embedded model on a busy machine
EXIT_TIMEOUT_S = 15
FUZZ_URI = "file:///fuzz/target.py"
_METHODS = [  # every method the server knows, but those that end the session or reload the model
    "textDocument/didOpen",
    "textDocument/didChange",
    "textDocument/didClose",
    "textDocument/inlineCompletion",
    "textDocument/completion",
    "workspace/didChangeConfiguration",
    "blockfill/accepted",
    "blockfill/stats",
    "$/cancelRequest",
    "blockfill/noSuchMethod",
]
_JUNK: list[Any] = [None, 0, -1, 2**63, 1.5, "", "\x00", "\ud800", "😀", [], {}, [[[]]], True, {"uri": 5}]


def frame(body: bytes, length: int | None = None) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % (len(body) if length is None else length) + body


def encode(message: Any) -> bytes:
    return json.dumps(message).encode()  # ASCII escapes: a lone surrogate travels as \ud800


def _junk(rng: random.Random, depth: int = 0) -> Any:
    if depth < 2 and rng.random() < 0.3:
        return {rng.choice(["textDocument", "position", "context", "uri", "x"]): _junk(rng, depth + 1)}
    return rng.choice(_JUNK)


def _position(rng: random.Random) -> Any:
    """A position no document has (a character past a line's end is valid: it would run the model)."""
    return rng.choice([{"line": -1, "character": 0}, {"line": 10**9, "character": 2**40}, {"line": 0}, "0:0", None])


def _valid(rng: random.Random, number: int) -> dict:
    """A well-formed message, to be framed wrongly."""
    if rng.random() < 0.5:
        return {"jsonrpc": "2.0", "id": f"fuzz-{number}", "method": "blockfill/stats", "params": {}}
    change = {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "text": "# x\n"}
    params = {"textDocument": {"uri": FUZZ_URI, "version": number}, "contentChanges": [change]}
    return {"jsonrpc": "2.0", "method": "textDocument/didChange", "params": params}


def hostile_message(rng: random.Random, number: int) -> bytes:
    """One malformed message: bad content, or a good one framed wrongly."""
    kind = rng.choice(["bytes", "not an object", "junk params", "inline", "change", "text", "framing", "framing"])
    if kind == "bytes":
        return frame(rng.randbytes(rng.randint(0, 80)))
    if kind == "not an object":
        return frame(encode(rng.choice([[1, 2], "text", 5, None, True, [{"jsonrpc": "2.0"}]])))
    if kind == "junk params":
        message = {"jsonrpc": "2.0", "method": rng.choice(_METHODS), "params": _junk(rng)}
        if rng.random() < 0.5:
            message["id"] = f"fuzz-{number}"
        return frame(encode(message))
    if kind == "inline":
        params = {
            "textDocument": {"uri": rng.choice([FUZZ_URI, "file:///never/opened.py", 5])},
            "position": _position(rng),
            "context": {"triggerKind": rng.choice([1, 2, 0, 3, -1, 99, "1", None])},
        }
        return frame(
            encode(
                {"jsonrpc": "2.0", "id": f"fuzz-{number}", "method": "textDocument/inlineCompletion", "params": params}
            )
        )
    if kind == "change":
        far = {"line": rng.choice([5, 10**6, -3]), "character": rng.choice([0, 2**31, -1])}
        change = {"range": {"start": far, "end": {"line": 0, "character": 0}}, "text": "\x00\ud800x"}
        params = {"textDocument": {"uri": FUZZ_URI, "version": number}, "contentChanges": [change]}
        return frame(encode({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": params}))
    if kind == "text":
        if rng.random() < 0.5:  # not UTF-8 at all
            head = b'{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///'
            return frame(head + b'fuzz/bytes.py","languageId":"python","version":1,"text":"\xff\xfe\xc3"}}}')
        item = {"uri": FUZZ_URI, "languageId": "python", "version": number, "text": "x = '\x00'\ny = '\udc80'\n"}
        return frame(encode({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": item}}))
    body = encode(_valid(rng, number))
    return rng.choice(
        [
            lambda: frame(body, rng.randint(0, len(body) - 1)),  # shorter than the body
            lambda: frame(body, len(body) + rng.choice([1, 30, 500, 10**6])),  # longer: runs into the next message
            lambda: body,  # no header
            lambda: b"Content-Length: %d\r\n" % len(body) + body,  # no blank line
            lambda: b"Content-Length: %d\r\n\r\n" % rng.randint(1, 200),  # a header and no body
            lambda: (
                rng.choice([b"Content-Length: abc", b"Content-Length: -5", b"content-length: 9", b"X-Junk"])
                + b"\r\n\r\n"
                + body
            ),
            lambda: b"Content-Length: %d\n\n" % len(body) + body,  # LF only
            lambda: b"Content-Length: 99999999999999999999999\r\n\r\n" + body,
            lambda: frame(body)[: rng.randint(1, 30)],  # cut short: the next message follows
        ]
    )()


class Wire:
    """One LSP connection seen from the client: raw bytes out, well-framed server messages read by a thread."""

    def __init__(self, reader: IO[bytes], writer: IO[bytes]) -> None:
        self.writer = writer
        self.received: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, args=(reader,), daemon=True).start()

    def _read(self, reader: IO[bytes]) -> None:
        while True:
            length = None
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            if not line or length is None:
                return
            self.received.put(json.loads(reader.read(length)))

    def write(self, data: bytes) -> None:
        self.writer.write(data)
        self.writer.flush()

    def send(self, message: dict) -> None:
        self.write(frame(encode(message)))

    def request(self, msg_id: str, method: str, params: Any, timeout: float = ANSWER_TIMEOUT_S) -> dict:
        """Send a request; its response, skipping everything else the server says meanwhile."""
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.received.get(timeout=left)
            except queue.Empty:
                break
            if message.get("id") == msg_id and "method" not in message:
                return message
        raise AssertionError(f"no answer to {method} ({msg_id}) in {timeout} s: the server is alive but deaf")


def _shut_down(wire: Wire, process: subprocess.Popen, close: Callable[[], None]) -> None:
    answer = wire.request("shutdown", "shutdown", None, timeout=EXIT_TIMEOUT_S)
    assert "result" in answer and answer["result"] is None, answer
    wire.send({"jsonrpc": "2.0", "method": "exit"})
    close()
    assert process.wait(EXIT_TIMEOUT_S) == 0


def _inline(uri: str, line: int, character: int) -> dict:
    return {
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 1},
    }


@pytest.fixture
def stdio_server(tmp_path):
    """The real server, on blockfill-tiny, over a pipe; its stderr in a file (a full pipe would block it)."""
    with (tmp_path / "stderr.txt").open("wb") as err:
        process = subprocess.Popen(SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_after_hundreds_of_malformed_messages_and_framing_errors_the_server_answers_and_exits_cleanly(
    stdio_server, tmp_path
):
    wire = Wire(stdio_server.stdout, stdio_server.stdin)
    assert "result" in wire.request("init", "initialize", {"capabilities": {}, "processId": None})
    wire.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    rng = random.Random(SEED)
    wire.write(b"".join(hostile_message(rng, number) for number in range(MESSAGES)))
    text = "def add(a, b):\n    \n"
    item = {"uri": "file:///fuzz/final.py", "languageId": "python", "version": 1, "text": text}
    wire.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": item}})
    answer = wire.request("final", "textDocument/inlineCompletion", _inline(item["uri"], 1, 4))
    assert isinstance((answer.get("result") or {}).get("items"), list), answer
    _shut_down(wire, stdio_server, stdio_server.stdin.close)
    assert b"not an LSP message" in (tmp_path / "stderr.txt").read_bytes()  # what was dropped is said


def test_one_short_content_length_is_survived(stdio_server):
    """The issue's case: `Content-Length: 5` before a 40-byte body, then a request."""
    wire = Wire(stdio_server.stdout, stdio_server.stdin)
    body = encode({"jsonrpc": "2.0", "method": "initialized", "params": {}})[:40]
    wire.write(frame(body, 5))
    assert "result" in wire.request("stats", "blockfill/stats", {})
    _shut_down(wire, stdio_server, stdio_server.stdin.close)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _connect(port: int, timeout: float = 30) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port))
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_over_tcp_a_bad_connection_is_closed_and_the_next_one_served(tmp_path):
    port = _free_port()
    with (tmp_path / "stderr.txt").open("wb") as err:
        process = subprocess.Popen([*SERVER, "--tcp", f"127.0.0.1:{port}"], stderr=err)
    try:
        with _connect(port) as bad:
            wire = Wire(bad.makefile("rb"), bad.makefile("wb"))
            wire.write(frame(b'{"jsonrpc": "2.0", "id": 1, "method": "initialize"}', 5))
            assert "result" in wire.request("init", "initialize", {"capabilities": {}, "processId": None})
            wire.write(b"Content-Length: 500\r\n\r\n{")  # and it goes away mid-message
            bad.shutdown(socket.SHUT_RDWR)
        with _connect(port) as good:
            wire = Wire(good.makefile("rb"), good.makefile("wb"))
            assert "result" in wire.request("stats", "blockfill/stats", {})
            _shut_down(wire, process, lambda: good.shutdown(socket.SHUT_WR))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    "stream",
    [
        frame(b'{"a": 1}', 3) + frame(b'{"b": 2}'),
        frame(b'{"a": 1}', 300) + frame(b'{"b": 2}'),
        b"Content-Length: 8\r\n" + frame(b'{"b": 2}'),
        b"garbage\r\n\r\nContent-Length: 12\r\n" + frame(b'{"b": 2}'),
    ],
    ids=["short", "long", "no blank line", "garbage"],
)
def test_frames_find_the_next_message_after_a_wrong_length_fed_a_byte_at_a_time(stream):
    frames, bodies = Frames(), []
    for byte in stream:
        frames.feed(bytes([byte]))
        while (body := frames.next()) is not None:
            try:
                json.loads(body)
            except ValueError:
                frames.reject()
            else:
                bodies.append(body)
    assert bodies == [b'{"b": 2}']


def test_frames_keep_other_headers_quiet(caplog):
    frames = Frames()
    with caplog.at_level(logging.WARNING):
        frames.feed(b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n" + frame(b"{}"))
        frames.feed(b"Content-Length: 2\r\nContent-Type: x\r\n\r\n[]")
        assert [frames.next(), frames.next(), frames.next()] == [b"{}", b"[]", None]
    assert not caplog.records
