"""Keystroke after keystroke: what a completion costs after one more typed character, relative to the first.

    python -m benchmarks.keystroke [--model embedded] [--points 20]

At each point (a random column inside a line of a standard-library module) the engine completes, then the user
types the next character and it completes again, reusing the previous prompt's encoder cache. The same second
request is also timed with the cache cleared, side by side in this process. Target (DESIGN.md §4): <= 0.5x.
"""

import argparse
import random
import statistics
import sysconfig
import time
from pathlib import Path

from engine.config import with_overrides
from engine.infill import Engine, InfillRequest


def timed(engine: Engine, request: InfillRequest) -> tuple[float, int]:
    began = time.perf_counter()
    completion = engine.complete([request])[0]
    return time.perf_counter() - began, completion.reused_prompt_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--file", type=Path, default=Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py")
    args = parser.parse_args()
    engine = Engine(with_overrides({"model": args.model}))
    text = args.file.read_text()
    all_lines = text.splitlines(keepends=True)
    lines = [i for i, line in enumerate(all_lines) if len(line.strip()) > 12]
    starts = [0]
    for line in all_lines:
        starts.append(starts[-1] + len(line))
    rng = random.Random(0)
    first, reused, cleared, tokens = [], [], [], []
    timed(engine, InfillRequest(text[:100], text[100:], "python"))  # warm-up
    for row in rng.sample(lines, args.points):
        cursor = starts[row] + rng.randrange(4, len(all_lines[row].rstrip("\n")) - 1)
        # `before`: the next character not yet typed; `after`: typed.
        before = InfillRequest(text[:cursor], text[cursor + 1 :], "python", force=True)
        after = InfillRequest(text[: cursor + 1], text[cursor + 1 :], "python", force=True)
        engine._prompt_cache = None
        first.append(timed(engine, before)[0])
        seconds, reused_tokens = timed(engine, after)
        reused.append(seconds)
        tokens.append(reused_tokens)
        engine._prompt_cache = None
        cleared.append(timed(engine, after)[0])
    med = statistics.median
    print(f"{args.points} points in {args.file.name}, model {args.model}:")
    print(f"  first request: median {1000 * med(first):.0f} ms")
    print(
        f"  next keystroke, prompt cache reused: median {1000 * med(reused):.0f} ms "
        f"({med(reused) / med(first):.2f}x the first; {med(tokens):.0f} prompt tokens reused)"
    )
    print(f"  next keystroke, cache cleared: median {1000 * med(cleared):.0f} ms ({med(cleared) / med(first):.2f}x)")


if __name__ == "__main__":
    main()
