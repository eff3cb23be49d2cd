"""Torch's CPU thread count for one forward, by how many tokens it reads and how busy the machine is.

A forward over several tokens (a prompt's chunk, the reranker's scores, a drafting step that reads the base's
token and four masks, or verifies drafts) is a wide product: on cores nothing else uses, it runs 1.2-1.9x faster
on two threads than on one. A forward of one token is thin and gains nothing. And where another process keeps a
core busy, a second thread makes even a wide forward about 2x slower: its share of the work waits for the core
(benchmarks/RESULTS.md). So the engine keeps `threads` for thin forwards and widens a wide one only onto the
cores that other processes left idle since it last looked.
"""

import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import torch

# Tokens a forward reads from which it counts as wide (CPU-2, prepacked weights: 5 tokens 1.25x, 9 1.37x; RESULTS.md).
WIDE_FORWARD_TOKENS = 2
# A look at the machine's load over less than this is too short for /proc/stat's clock ticks: the last one stands.
SHORTEST_LOOK_SECONDS = 0.2


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the body with `count` intra-op threads in this thread, and give the old count back after it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class OtherLoad:
    """How many cores' worth of work other processes did since the last look: the machine's busy time
    (/proc/stat) less this process's own CPU time. None where /proc/stat cannot be read (not Linux)."""

    def __init__(self) -> None:
        self._last = _sample()
        self._cores: float | None = None

    def cores(self) -> float | None:
        now = _sample()
        if now is None or self._last is None:
            return None
        seconds = now[0] - self._last[0]
        if seconds >= SHORTEST_LOOK_SECONDS:
            busy, own = now[1] - self._last[1], now[2] - self._last[2]
            self._cores, self._last = max(0.0, (busy - own) / seconds), now
        return self._cores


def _sample() -> tuple[float, float, float] | None:
    """(monotonic seconds, the machine's busy CPU seconds, this process's CPU seconds)."""
    try:
        ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + ticks[4]  # idle and iowait; then irq, softirq, steal count as busy
    own = os.times()
    return time.monotonic(), (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"), own.user + own.system


class ThreadPolicy:
    """The threads for each forward: `narrow` (the engine's `threads`) for thin ones; for wide ones the cores that
    other processes left idle, between `narrow` and `wide` (`prompt_threads`)."""

    def __init__(self, narrow: int, wide: int):
        self.narrow, self.wide = narrow, max(narrow, wide)
        self._load = OtherLoad() if self.wide > narrow else None
        self._cores = os.cpu_count() or 1

    def threads(self, tokens: int) -> int:
        if tokens < WIDE_FORWARD_TOKENS or self._load is None:
            return self.narrow
        others = self._load.cores()
        if others is None:
            return self.narrow
        return min(self.wide, max(self.narrow, round(self._cores - others)))

    def for_forward(self, tokens: int) -> AbstractContextManager[None]:
        """Run a forward over `tokens` tokens (or a stretch of such forwards) on its threads."""
        count = self.threads(tokens)
        return torch_threads(count) if count != self.narrow else nullcontext()
