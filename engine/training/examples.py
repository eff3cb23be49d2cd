"""Fill-in-the-middle training examples cut from source files.

The span mix follows what editors and benchmarks ask for: whole lines with their indentation (block mode, and
HumanEval-Infilling's middles), the rest of a line (line mode), random character spans, and empty middles (the
model must learn to stop at once when nothing is missing).
"""

import random
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from engine.prompt import encode_text

SPAN_KINDS = {"lines": 0.5, "line_tail": 0.25, "random": 0.2, "empty": 0.05}


@dataclass(frozen=True)
class FimExample:
    prefix_ids: list[int]
    middle_ids: list[int]
    suffix_ids: list[int]


def _cut(text: str, rng: random.Random, kind: str) -> tuple[int, int] | None:
    """Character offsets (start, end) of the middle for one span kind, or None if the file has no such span."""
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    filled = [i for i, line in enumerate(lines) if line.strip()]
    if not filled:
        return None
    i = rng.choice(filled)
    if kind == "lines":
        count = min(int(rng.expovariate(1 / 2.5)) + 1, 12)
        return starts[i], starts[min(i + count, len(lines))]
    if kind == "line_tail":
        line = lines[i].rstrip("\r\n")
        indent = len(line) - len(line.lstrip())
        return (starts[i] + rng.randrange(indent, len(line)), starts[i] + len(line)) if line else None
    if kind == "random":
        start = rng.randrange(len(text))
        return start, min(len(text), start + int(rng.expovariate(1 / 60)) + 1)
    return starts[i], starts[i]


def sample_example(
    text: str,
    tokenizer: PreTrainedTokenizerBase,
    rng: random.Random,
    canvas_length: int,
    max_prefix_tokens: int,
    max_suffix_tokens: int,
    tries: int = 8,
) -> FimExample | None:
    """One example whose middle fits the canvas with room for its EOS, or None after `tries` misses."""
    kinds, weights = zip(*SPAN_KINDS.items(), strict=True)
    for _ in range(tries):
        span = _cut(text, rng, rng.choices(kinds, weights)[0])
        if span is None:
            continue
        start, end = span
        # ~4 characters a token is generous for code, so these windows always hold the token budgets.
        prefix = text[max(0, start - 4 * max_prefix_tokens) : start]
        suffix = text[end : end + 4 * max_suffix_tokens]
        middle = text[start:end]
        prefix_ids, middle_ids, suffix_ids = (encode_text(tokenizer, part) for part in (prefix, middle, suffix))
        if len(middle_ids) < canvas_length:
            return FimExample(prefix_ids[-max_prefix_tokens:], middle_ids, suffix_ids[:max_suffix_tokens])
    return None
