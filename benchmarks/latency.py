"""Replay an editing session in a ~3,000-line Python file against `blockfill serve` over stdio: latency figures.

    python -m benchmarks.latency [--model blockfill-coder|DIR] [--functions 4] [--keystroke-ms 80] [--pause-ms 400]

`--functions` functions of the file are deleted and typed back character by character, as a person types:
one didChange + Automatic inlineCompletion per keystroke, `--keystroke-ms` apart, and a `--pause-ms` pause at
each line's end (a newer request supersedes the older one, as in an editor). Debounce is off, so the figures
are the server's and the model's own. Then `--cancels` long requests are cancelled mid-run.

Figures: keystroke-to-completion latency of the answers the user sees (request sent -> answer read, on the
client; superseded requests excluded), the same per mode (line / block, server-side), the server's time outside
the model (its `blockfill/stats`: answer time less the denoising), typing-cache hits, and cancel-to-idle (the
server's stop-to-worker-free time, and the client's cancel-to-`ready` status).

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

from engine.config import EngineConfig


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


def _functions(text: str, count: int, rng: random.Random, max_chars: int) -> list[tuple[int, str]]:
    """(offset, source) of `count` indented methods of 3-12 lines, at most `max_chars` long, picked at random."""
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    found = []
    for row, line in enumerate(lines):
        if not line.startswith("    def ") or not line.rstrip().endswith(":"):
            continue
        end = row + 1
        while end < len(lines) and (lines[end].startswith("        ") or not lines[end].strip()):
            end += 1
        while end > row + 1 and not lines[end - 1].strip():
            end -= 1
        body = "\n".join(lines[row:end])
        if 3 <= end - row <= 12 and len(body) <= max_chars and '"""' not in body:
            found.append((offsets[row], body))
    return sorted(rng.sample(found, min(count, len(found))))


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
    seen: list[float] = []  # keystroke -> answer, for the answers the user saw (not superseded)
    shown = keystrokes = 0
    for offset, source in _functions(text, args.functions, rng, args.max_chars):
        # Open the file without this function, then type it back.
        before, after = text[:offset], text[offset + len(source) :]
        version += 1
        client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": version, "text": before + after}},
        )
        row, column = before.count("\n"), len(before) - (before.rfind("\n") + 1)
        pending: tuple[float, int, asyncio.Future] | None = None
        for char in source:
            version += 1
            position = {"line": row, "character": column}
            change = {"range": {"start": position, "end": position}, "text": char}
            client.notify(
                "textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]}
            )
            row, column = (row + 1, 0) if char == "\n" else (row, column + 1)
            if pending is not None and pending[2].done():
                seen.append(client.answered_at[pending[1]] - pending[0])
                shown += bool(pending[2].result() and pending[2].result()["items"])
            params = {
                "textDocument": {"uri": uri},
                "position": {"line": row, "character": column},
                "context": {"triggerKind": 2},
            }
            pending = (time.perf_counter(), *client.request("textDocument/inlineCompletion", params))
            keystrokes += 1
            pause = args.pause_ms if char == "\n" else args.keystroke_ms
            await asyncio.sleep(pause / 1000)
        if pending is not None:
            result = await pending[2]
            seen.append(client.answered_at[pending[1]] - pending[0])
            shown += bool(result and result["items"])
    server = await client.call("blockfill/stats", {})

    # Cancel-to-idle: jobs made long (thousands of steps, no early stop), cancelled once they run.
    slow = {"maxSteps": 5000, "lineSteps": 5000, "confidenceThreshold": 0, "refineSteps": 0}
    client.notify("workspace/didChangeConfiguration", {"settings": slow})
    cancel_client_side: list[float] = []
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

    print(f"{keystrokes} keystrokes; answers seen before the next keystroke (or at the end): {len(seen)}")
    print(f"keystroke-to-completion latency of the answers seen (client-side): {_ms(seen)}; with an item: {shown}")
    _print_server("server latency, all modes", server["latencyMs"])
    for mode, figure in sorted(server["latencyByModeMs"].items()):
        _print_server(f"server latency, {mode} mode", figure)
    _print_server("time outside the model", server["outsideModelMs"])
    _print_server("time outside engine.complete() (the server's own)", server["outsideEngineMs"])
    _print_server("typing-cache hit", server["cacheHitMs"])
    _print_server("cancel-to-idle (stop -> worker free)", after_cancels["cancelToIdleMs"])
    print(f"cancel-to-idle (client: $/cancelRequest -> status ready): {_ms(cancel_client_side)}")


def _print_server(name: str, figure: dict) -> None:
    print(f"{name} (server-side): p50 {figure['p50']} ms, p95 {figure['p95']} ms (n={figure['count']})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=EngineConfig.model, help="default: the engine's default model")
    parser.add_argument("--lines", type=int, default=3000)
    parser.add_argument("--functions", type=int, default=4, help="functions deleted and typed back")
    parser.add_argument("--max-chars", type=int, default=400, help="longest function to pick, in characters")
    parser.add_argument("--keystroke-ms", type=float, default=80.0, help="between keystrokes within a line")
    parser.add_argument("--pause-ms", type=float, default=400.0, help="at each line's end")
    parser.add_argument("--cancels", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="engine setting for the server")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
