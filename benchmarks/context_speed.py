"""How long context building takes on a ~3,000-line Python file: a full parse + build_context (what a server
without incremental parsing pays per request) against an incremental edit + build_context (what
ParsedDocument pays per keystroke). Prints medians over --runs.

    python -m benchmarks.context_speed [--lines 3000] [--runs 200] [--tokenizer tokenizer.json | --model embedded]

Without --tokenizer, tokens are counted by a stand-in (~3 UTF-8 bytes a token); a real `tokenizers` file
shows what counting every cut with the model's tokenizer adds; --model uses the engine's own counter (the
model's tokenizer, per line, cached across requests), which is what the language server pays.
"""

import argparse
import statistics
import time
from collections.abc import Callable

from engine.context import ParsedDocument, build_context
from engine.languages import parser_for
from engine.postprocess import Candidate, postprocess


def generated_file(lines: int) -> str:
    """Classes of small methods with docstrings and some non-ASCII, about `lines` lines long."""
    parts = ["import os\nimport sys\nfrom typing import Any\n\n"]
    i = 0
    while sum(part.count("\n") for part in parts) < lines:
        parts.append(
            f"\n\nclass Store{i}:\n"
            f'    """Keeps values for key {i} — with ünïcode."""\n\n'
            f"    def get_{i}(self, key: str, default: Any = None) -> Any:\n"
            f"        value = self.data.get(key + '{i}', default)\n"
            f"        if value is None:\n            return default\n"
            f"        return [v * {i} for v in value if v]\n\n"
            f"    def put_{i}(self, key: str, value: Any) -> None:\n"
            f"        self.data[key] = value  # overwrite\n"
        )
        i += 1
    return "".join(parts)


def _median_ms(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--tokenizer", help="a tokenizers tokenizer.json to count tokens with")
    parser.add_argument("--model", help="count with this model's engine counter, e.g. embedded")
    args = parser.parse_args()
    if args.model:
        from engine.config import EngineConfig
        from engine.infill import Engine

        count = Engine(EngineConfig(model=args.model)).budget_tokens
    elif args.tokenizer:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(args.tokenizer)

        def count(text: str) -> int:
            return len(tokenizer.encode(text, add_special_tokens=False).ids)
    else:

        def count(text: str) -> int:
            return len(text.encode()) // 3 + 1

    text = generated_file(args.lines)
    offset = text.index("return [v * 700") if "return [v * 700" in text else len(text) // 2
    python = parser_for("python")
    assert python is not None, "tree-sitter-python is not installed"
    doc = ParsedDocument(text, "python")

    def keystroke() -> None:
        doc.apply_edit(offset, offset, "x")
        doc.context(offset + 1, count)
        doc.apply_edit(offset, offset + 1, "")  # undo, so every run sees the same file

    ctx, _ = doc.context(offset, count)
    candidates = [Candidate("[v * 700 for v in value if v]", 0.9), Candidate("value)", 0.5)]
    figures = {
        "full parse": _median_ms(lambda: python.parse(text.encode()), args.runs),
        "full parse + build_context": _median_ms(lambda: build_context(text, offset, "python", count), args.runs),
        "build_context on a kept tree": _median_ms(lambda: doc.context(offset, count), args.runs),
        "edit + reparse + build_context, then undo": _median_ms(keystroke, args.runs),
        "postprocess, 2 candidates": _median_ms(lambda: postprocess(candidates, ctx), args.runs),
    }
    print(f"{text.count(chr(10))} lines, {len(text.encode())} bytes, {args.runs} runs, median ms")
    counter = f"engine of {args.model}" if args.model else args.tokenizer or "stand-in (~3 bytes a token)"
    print(f"counter: {counter}")
    for name, ms in figures.items():
        print(f"  {name:45s} {ms:8.3f}")


if __name__ == "__main__":
    main()
