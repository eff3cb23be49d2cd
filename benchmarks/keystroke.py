"""Keystroke after keystroke: what a completion costs after one more typed character, relative to the first.

    python -m benchmarks.keystroke [--model blockfill-coder] [--points 20] [--set key=value ...]

At each point (a random column inside a line of a standard-library module) the engine completes, then the user
types the next character and it completes again. That second request is timed three ways, side by side in this
process on one loaded model: refined (a diffusion model repairs the previous suggestion in `refine_steps` steps; a
causal one shows its rest where the typed character is the one it began with, `typeahead`; with the previous
prompt's caches reused), cache reuse alone (from noise, no typeahead), and from scratch. Quality: how often each
shows the rest of the line exactly, and how often the refined suggestion equals the from-scratch one.
Target (DESIGN.md §4): <= 0.5x the first request.
"""

import argparse
import random
import statistics
import sysconfig
import time
from pathlib import Path

from engine.config import EngineConfig, parse_assignments, with_overrides
from engine.infill import Completion, Engine, InfillRequest


def timed(engine: Engine, request: InfillRequest) -> tuple[float, Completion]:
    began = time.perf_counter()
    completion = engine.complete([request])[0]
    return time.perf_counter() - began, completion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", default=EngineConfig.model, help="default: the engine's default model")
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--refine-steps", type=int, default=2)
    parser.add_argument("--file", type=Path, default=Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any engine setting")
    args = parser.parse_args()
    settings = {"model": args.model, **parse_assignments(args.set)}
    refining = Engine(with_overrides({**settings, "refine_steps": args.refine_steps}))
    from_noise = Engine(with_overrides({**settings, "refine_steps": 0, "typeahead": False}), refining.loaded)
    text = args.file.read_text()
    all_lines = text.splitlines(keepends=True)
    lines = [i for i, line in enumerate(all_lines) if len(line.strip()) > 12]
    starts = [0]
    for line in all_lines:
        starts.append(starts[-1] + len(line))
    rng = random.Random(0)
    seconds: dict[str, list[float]] = {"first": [], "refined": [], "reused": [], "scratch": []}
    right = {name: 0 for name in seconds}
    agree, refined_count, tokens, refined_flags = 0, 0, [], []
    timed(refining, InfillRequest(text[:100], text[100:], "python"))  # warm-up
    for row in rng.sample(lines, args.points):
        cursor = starts[row] + rng.randrange(4, len(all_lines[row].rstrip("\n")) - 1)
        rest_of_line = text[cursor + 1 : starts[row + 1]].rstrip("\n")
        # `before`: the next character not yet typed; `after`: typed.
        before = InfillRequest(text[:cursor], text[cursor + 1 :], "python", force=True)
        after = InfillRequest(text[: cursor + 1], text[cursor + 1 :], "python", force=True)
        shown: dict[str, Completion] = {}
        for name, engine, request, fresh in (
            ("first", refining, before, True),
            ("refined", refining, after, False),
            ("first", from_noise, before, True),
            ("reused", from_noise, after, False),
            ("scratch", from_noise, after, True),
        ):
            if fresh:
                engine.forget_previous()
            elapsed, shown[name] = timed(engine, request)
            if not (name == "first" and engine is from_noise):  # the first request is timed once
                seconds[name].append(elapsed)
                right[name] += shown[name].text.strip() == rest_of_line.strip()
        refined_count += shown["refined"].refined
        refined_flags.append(shown["refined"].refined)
        agree += shown["refined"].text == shown["scratch"].text
        tokens.append(shown["reused"].reused_prompt_tokens)
    med = statistics.median
    first = med(seconds["first"])
    n = args.points
    print(f"{n} points in {args.file.name}, model {args.model}, refine_steps {args.refine_steps}:")
    print("| request | median | vs the first | shows the rest of the line |")
    print("|---|---|---|---|")
    labels = {
        "first": "first request at the point",
        "refined": f"next keystroke, previous suggestion refined or typed through ({refined_count}/{n}), cache reused",
        "reused": f"next keystroke, from noise, encoder cache reused ({med(tokens):.0f} prompt tokens)",
        "scratch": "next keystroke, from scratch (no reuse)",
    }
    for name, label in labels.items():
        ratio = med(seconds[name]) / first
        print(f"| {label} | {1000 * med(seconds[name]):.0f} ms | {ratio:.2f}x | {right[name]}/{n} |")
    print(f"refined suggestion identical to the from-scratch one: {agree}/{n}")
    typed_through = [s for s, c in zip(seconds["refined"], refined_flags, strict=True) if c]
    if typed_through:
        print(f"median of the {len(typed_through)} refined or typed through: {1000 * med(typed_through):.0f} ms")


if __name__ == "__main__":
    main()
