"""Replay typing in a ~3,000-line Python file against `blockfill serve` over stdio and print latency figures.

    python benchmarks/lsp_latency.py [--model embedded|DIR] [--points 30] [--keystroke-ms 60]

At each of `--points` places in function bodies the line is cut at a random column and retyped character by
character, one didChange + Automatic inlineCompletion per keystroke, `--keystroke-ms` apart (a newer request
supersedes the older one, as in an editor); after the burst the last answer is awaited. Debounce is off, so the
figures are the server's and the model's own. Then `--cancels` long requests are cancelled mid-run.

Figures: p50/p95 latency of answered model requests (request sent -> answer read, on the client), the
server's time outside the model (its `blockfill/stats`: answer time less the denoising), typing-cache hits,
and cancel-to-idle (the server's stop-to-worker-free time, and the client's cancel-to-`ready` status).

A small JSON-RPC client is written here rather than importing pygls: only lsp_server/ knows LSP libraries.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import statistics
import sys
import time
import typing
from pathlib import Path
from typing import Any


class Client:
    """Just enough LSP client: requests with futures, notifications, server requests answered with null."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self.statuses: list[tuple[float, dict]] = []
        self.answered_at: dict[int, float] = {}  # perf_counter() when each response was read

    async def start(self, command: list[str]) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        self._reader = asyncio.create_task(self._read())

    def _send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self._process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def notify(self, method: str, params: Any) -> None:
        self._send({"method": method, "params": params})

    def request(self, method: str, params: Any) -> tuple[int, asyncio.Future]:
        msg_id = next(self._ids)
        future = self._pending[msg_id] = asyncio.get_running_loop().create_future()
        self._send({"id": msg_id, "method": method, "params": params})
        return msg_id, future

    async def call(self, method: str, params: Any) -> Any:
        return await self.request(method, params)[1]

    async def _read(self) -> None:
        stdout = self._process.stdout
        while True:
            length = 0
            while (line := await stdout.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not line:
                return
            message = json.loads(await stdout.readexactly(length))
            if "method" in message and "id" in message:  # a server request (progress token): accept it
                self._send({"id": message["id"], "result": None})
            elif message.get("method") == "blockfill/status":
                self.statuses.append((time.perf_counter(), message["params"]))
            elif "id" in message and (future := self._pending.pop(message["id"], None)) is not None:
                self.answered_at[message["id"]] = time.perf_counter()
                if "error" in message:
                    future.set_exception(RuntimeError(message["error"]["message"]))
                else:
                    future.set_result(message.get("result"))

    async def wait_for_state(self, state: str, after: float = 0.0, timeout: float = 300) -> float:
        async with asyncio.timeout(timeout):
            while True:
                for at, status in self.statuses:
                    if at >= after and status["state"] == state:
                        return at
                    if status["state"] == "error":
                        raise RuntimeError(status["message"])
                await asyncio.sleep(0.005)

    async def stop(self) -> None:
        await self.call("shutdown", None)
        self.notify("exit", None)
        await self._process.wait()


def _source(lines: int) -> str:
    """A real ~`lines`-line Python file: the standard library's typing module, repeated if short."""
    text = Path(typing.__file__).read_text()
    while text.count("\n") < lines:
        text += text
    return "".join(text.splitlines(keepends=True)[:lines])


def _positions(text: str, count: int, rng: random.Random) -> list[tuple[int, int, str]]:
    """(line, column, rest of the line) at indented code lines, cut at a random column."""
    candidates = [
        (row, line)
        for row, line in enumerate(text.split("\n"))
        if line.startswith("        ") and len(line.strip()) > 12 and not line.strip().startswith(("#", '"'))
    ]
    picked = rng.sample(candidates, min(count, len(candidates)))
    result = []
    for row, line in sorted(picked):
        indent = len(line) - len(line.lstrip())
        column = rng.randint(indent + 1, len(line) - 6)
        result.append((row, column, line[column:]))
    return result


def _ms(samples: list[float]) -> str:
    if not samples:
        return "n/a"
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms (n={len(ordered)})"


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    text = _source(args.lines)
    client = Client()
    command = [sys.executable, "-m", "lsp_server", "--model", args.model, "--set", "debounce_ms=0"]
    command += ["--set", "acceptance_log=", *itertools.chain.from_iterable(["--set", s] for s in args.set or [])]
    await client.start(command)
    began = time.perf_counter()
    await client.call("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    client.notify("initialized", {})
    await client.wait_for_state("ready")
    print(f"model ready after {time.perf_counter() - began:.1f} s; file: {text.count(chr(10))} lines")

    uri, version = "file:///bench/typing_module.py", 1
    positions = _positions(text, args.points, rng)
    every_request: list[float] = []  # each keystroke's request, superseded ones included
    after_pause: list[float] = []  # the last request of each burst: what the user waits for
    shown = 0
    for row, column, rest in positions:
        # Open the file with this line cut at `column`, then retype `--chars` characters of it.
        lines = text.split("\n")
        lines[row] = lines[row][:column]
        version += 1
        client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": version, "text": "\n".join(lines)}},
        )
        in_flight: list[tuple[float, int, asyncio.Future]] = []
        for offset in range(args.chars + 1):
            if offset:
                version += 1
                position = {"line": row, "character": column + offset - 1}
                change = {"range": {"start": position, "end": position}, "text": rest[offset - 1]}
                client.notify(
                    "textDocument/didChange",
                    {"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]},
                )
            params = {
                "textDocument": {"uri": uri},
                "position": {"line": row, "character": column + offset},
                "context": {"triggerKind": 2},
            }
            in_flight.append((time.perf_counter(), *client.request("textDocument/inlineCompletion", params)))
            await asyncio.sleep(args.keystroke_ms / 1000)
        for sent, msg_id, future in in_flight:
            result = await future
            every_request.append(client.answered_at[msg_id] - sent)
            shown += bool(result and result["items"])
        after_pause.append(every_request[-1])
    server = await client.call("blockfill/stats", {})

    # Cancel-to-idle: jobs made long (thousands of steps, no early stop), cancelled once they run.
    client.notify("workspace/didChangeConfiguration", {"settings": {"maxSteps": 5000, "confidenceThreshold": 0}})
    cancel_client_side: list[float] = []
    row, column, _ = positions[0]
    for index in range(args.cancels):
        params = {"textDocument": {"uri": uri}, "position": {"line": row, "character": column}}
        params["context"] = {"triggerKind": 1}
        sent = time.perf_counter()
        msg_id, future = client.request("textDocument/inlineCompletion", params)
        await client.wait_for_state("busy", after=sent)
        await asyncio.sleep(0.05 + 0.01 * index)  # land at different points of a step
        cancelled_at = time.perf_counter()
        client.notify("$/cancelRequest", {"id": msg_id})
        with contextlib.suppress(RuntimeError):
            await future
        cancel_client_side.append(await client.wait_for_state("ready", after=cancelled_at) - cancelled_at)
    after_cancels = await client.call("blockfill/stats", {})
    await client.stop()

    print(f"inline completion latency, last keystroke of a burst (client-side): {_ms(after_pause)}")
    print(f"inline completion latency, every keystroke (client-side): {_ms(every_request)}")
    print(f"answers with an item: {shown} of {len(every_request)}")
    _print_server("server latency", server["latencyMs"])
    _print_server("time outside the model", server["outsideModelMs"])
    _print_server("time outside engine.complete() (the server's own)", server["outsideEngineMs"])
    _print_server("typing-cache hit", server["cacheHitMs"])
    _print_server("cancel-to-idle (stop -> worker free)", after_cancels["cancelToIdleMs"])
    print(f"cancel-to-idle (client: $/cancelRequest -> status ready): {_ms(cancel_client_side)}")


def _print_server(name: str, figure: dict) -> None:
    print(f"{name} (server-side): p50 {figure['p50']} ms, p95 {figure['p95']} ms (n={figure['count']})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--lines", type=int, default=3000)
    parser.add_argument("--points", type=int, default=30, help="places in the file where typing is replayed")
    parser.add_argument("--chars", type=int, default=5, help="characters typed at each place")
    parser.add_argument("--keystroke-ms", type=float, default=60.0)
    parser.add_argument("--cancels", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="engine setting for the server")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
