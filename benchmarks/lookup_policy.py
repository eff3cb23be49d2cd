"""Prompt-lookup policies replayed on recorded middles: tokens a forward, and time from measured forward costs.

    python -m benchmarks.quality --suite santacoder --limit 120 --model blockfill-coder --set rerank=false \
        --records runs/sc_base.jsonl
    python -m benchmarks.lookup_policy runs/sc_base.jsonl --suite santacoder --limit 120 \
        --ms 1:174,2:353,3:462,5:547,9:474,17:657

Lookup drafts are verified (engine.coder), so a middle is the base's greedy one whatever the policy: the forwards
a policy needs follow from the middle's tokens and the reference alone, with no model run. Each middle recorded by
`benchmarks.quality --records` with `--set rerank=false` (the FIM middle itself, re-tokenized) is replayed against
its FIM prompt, step by step as a `Middle` runs: the base's next token, plus what the policy copies after it,
kept up to the first copied token that differs from the middle. Time is modelled from what a forward of n new
tokens costs on the machine (`python -m benchmarks.forward_cost --tokens 1,2,5,9,17`), linear between the given
points: on a CPU a forward of two tokens can cost twice one, so more tokens a forward is not always faster.
"""

import argparse
import json
from pathlib import Path

from benchmarks.quality import DATA, load_tasks
from engine.coder import LOOKUP_NGRAM, lookup_drafts
from engine.config import with_overrides
from engine.infill import Engine, InfillRequest

# (name, tokens copied at most, n-gram sizes tried in turn); the first is the engine's (lookup_tokens=8).
POLICIES = [
    ("none (one token a forward)", 0, (LOOKUP_NGRAM,)),
    ("the engine's: 8 after a 3-gram", 8, (LOOKUP_NGRAM,)),
    ("16 after a 3-gram", 16, (3,)),
    ("16 after a 4-gram", 16, (4,)),
    ("8 after a 3-, then 2-gram", 8, (3, 2)),
    ("8 after a 3-, 2-, then 1-gram", 8, (3, 2, 1)),
    ("16 after a 3-, 2-, then 1-gram", 16, (3, 2, 1)),
]


def forwards(reference: list[int], middle: list[int], limit: int, ngrams: tuple[int, ...]) -> list[int]:
    """The tokens each forward reads while `middle` is decoded (its first token comes from the prompt's forward,
    its last needs none)."""
    sizes, settled = [], 1
    while settled < len(middle):
        written = middle[:settled]  # the base's next token is the last of these
        copied = next((d for n in ngrams if (d := lookup_drafts(reference, written, limit, n))), [])
        kept = next((i for i, (a, b) in enumerate(zip(copied, middle[settled:], strict=False)) if a != b), None)
        kept = min(len(copied), len(middle) - settled) if kept is None else kept
        sizes.append(1 + len(copied))
        settled += 1 + kept
    return sizes


def modelled_ms(points: dict[int, float], tokens: int) -> float:
    """A forward's cost, linear between the measured token counts (flat past the last)."""
    known = sorted(points)
    if tokens >= known[-1]:
        return points[known[-1]]
    upper = next(n for n in known if n >= tokens)
    lower = max((n for n in known if n <= tokens), default=upper)
    if upper == lower:
        return points[upper]
    return points[lower] + (points[upper] - points[lower]) * (tokens - lower) / (upper - lower)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("records", type=Path, help="benchmarks.quality --records output, run with rerank=false")
    parser.add_argument("--suite", choices=("single", "multi", "santacoder"), default="santacoder")
    parser.add_argument("--limit", type=int, default=120)
    parser.add_argument("--every", type=int, default=0)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--ms", required=True, help="measured ms of a forward of n tokens, as n:ms,n:ms,...")
    args = parser.parse_args()
    points = {int(n): float(ms) for n, ms in (pair.split(":") for pair in args.ms.split(","))}
    engine = Engine(with_overrides({"model": args.model}))
    tasks = load_tasks(args.suite, DATA, args.limit, args.every)
    records = [json.loads(line) for line in args.records.open()]  # in task order (names need not be unique)
    pairs = []
    for task, record in zip(tasks, records, strict=True):
        request = InfillRequest(task["prompt"], task["suffix"], task.get("language", "python"), force=True)
        context, _ = engine.plan(request)
        middle = engine._encode(record["raw"])
        if len(middle) > 1:
            fim_prompt, _ = engine._fim_prompt(context, context.canvas_tokens, engine._head(context))
            pairs.append((fim_prompt.input_ids, middle))
    tokens = sum(len(m) for _, m in pairs)
    print(f"{len(pairs)} FIM middles from {args.records} ({tokens} tokens), forward cost {points}:")
    baseline = None
    for name, limit, ngrams in POLICIES:
        sizes = [size for reference, middle in pairs for size in forwards(reference, middle, limit, ngrams)]
        ms = sum(modelled_ms(points, size) for size in sizes)
        baseline = baseline or ms
        print(  # the prompt's forward writes the first token: counted as a step, as benchmarks.quality counts
            f"  {name:32} {tokens / (len(sizes) + len(pairs)):.2f} tokens a step, {len(sizes)} forwards, "
            f"modelled time {baseline / ms:.2f}x the one-token decode's speed"
        )


if __name__ == "__main__":
    main()
