"""Which rule should rank a causal model's candidates: every candidate scored every way, judged for real, offline.

    python -m benchmarks.rerank_rules record --suite multi --limit 50 --out runs/rules/multi.jsonl
    python -m benchmarks.rerank_rules compare runs/rules/multi.jsonl [more.jsonl ...]

`record` runs the engine as it ranks by default and keeps, for every hole, every candidate post-processing
ranked: its shown text, whether it passes (HumanEval executed; SantaCoder's first line), the ranking keys that
come before the score (adds a syntax error, unbalances brackets, only comments) and per-token log-probabilities
of two readings: the plain file (the cursor line's start, the candidate, then up to `--window` suffix tokens,
after the file up to the cursor's line: what engine.rerank sums) and the FIM prompt (the candidate and then the
model's end of middle). `compare` replays the engine's ranking under each rule on those records and counts the
holes each rule gets right, and how often it chooses what the engine chose, beside the engine's own choice (which
the `engine` rule must reproduce) and the best any rule could do (a candidate that passes exists). A rule reads
at most the `--window` suffix tokens recorded: with `--window 32`, the rules past 32 read 32.
"""

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch
from transformers.cache_utils import DynamicCache

from benchmarks.execution import humaneval_program, passes
from benchmarks.quality import DATA, first_line, load_tasks
from benchmarks.rerank_cost import log_distributions, snapshot, token_log_probs
from engine import infill
from engine.config import parse_assignments, with_overrides
from engine.infill import Engine, InfillRequest
from engine.postprocess.base import last_line
from engine.postprocess.brackets import adds_only_comments, imbalance


def record(args) -> None:
    engine = Engine(with_overrides({"model": args.model, **parse_assignments(args.set)}))
    lm, special = engine.loaded.model, engine.loaded.special
    scorer, ranker, plain = infill.file_log_likelihoods, infill.postprocess, {}
    seen: list = []

    def keep_plain_file(model, cache, next_logits, continuations, should_stop=None):  # the engine's call, kept
        plain["cache"], plain["next"] = snapshot(cache, model.config), next_logits.clone()
        return scorer(model, cache, next_logits, continuations, should_stop)

    def keep_ranking(candidates, context, options):
        ranked = ranker(candidates, context, options)
        seen.append(ranked)
        return ranked

    infill.file_log_likelihoods, infill.postprocess = keep_plain_file, keep_ranking
    infill.standing_in = lambda context: lambda candidate: ()  # every draft scored, not only the best-standing ones
    tasks = load_tasks(args.suite, DATA, args.limit, args.every, args.held_out)[args.skip :]
    stop_ids = sorted(special.stop_ids)
    with args.out.open("a") as out:
        for number, task in enumerate(tasks):
            plain.clear()
            seen.clear()
            language = task.get("language", "python")
            completion = engine.complete([InfillRequest(task["prompt"], task["suffix"], language, force=True)])[0]
            context = completion.context
            if "cache" not in plain or not seen[-1]:  # nothing reranked (no line before the cursor's, no survivor)
                continue
            ranked = seen[-1]  # the engine's final ranking of the hole's drafts
            line_before = last_line(context.prefix)
            fim_prompt, healed = engine._fim_prompt(context, context.canvas_tokens, engine._head(context))
            fim_cache = DynamicCache(config=lm.config)
            fim_next = engine.drafter.prefill(fim_prompt.input_ids, fim_cache)[0]  # [V]
            baseline = imbalance(context, "")
            candidates = []
            for candidate in ranked:
                text = candidate.text
                head = engine.count_tokens(line_before + text)
                ids = engine._encode(line_before + text + context.suffix)[: head + args.window]
                middle = engine._encode(healed + text)  # as the engine's FIM decode writes it (engine.healing)
                fim = log_distributions(lm, fim_cache, fim_next, middle)  # [len(middle) + 1, V]
                candidates.append(
                    {
                        "text": text,
                        "ok": judged(args.suite, task, text),
                        "syntax": (candidate.syntax_errors_added or 0) > 0,
                        "unbalanced": imbalance(context, text) > baseline,
                        "comments": adds_only_comments(context, text),
                        "engine_score": candidate.score,
                        "plain": token_log_probs(log_distributions(lm, plain["cache"], plain["next"], ids), ids),
                        "plain_head": head,
                        "fim": token_log_probs(fim, middle),
                        # How sure the FIM reading is that the middle ends here: any of the model's end tokens.
                        "fim_end": float(torch.logsumexp(fim[-1, stop_ids], 0)),
                    }
                )
            row = {"task": task.get("task_id", task.get("name")), "number": args.skip + number, "mode": context.mode}
            row["chosen"] = completion.text
            row["candidates"] = candidates
            out.write(json.dumps(row) + "\n")
            out.flush()
            chosen_ok = next((c["ok"] for c in candidates if c["text"] == completion.text), False)
            print(
                f"{args.skip + number}: {len(candidates)} candidates, the engine's choice ok: {chosen_ok}", flush=True
            )


def judged(suite: str, task: dict, text: str) -> bool:
    if suite == "santacoder":
        return first_line(text) == first_line(task["canonical_solution"])
    return passes(humaneval_program(task, text))


def rules() -> dict[str, Callable[[dict], float]]:
    """Scores to rank by (higher is better), each from a candidate's recorded log-probabilities (a window past
    the suffix's end reads what there is)."""

    def plain(c: dict, suffix: int) -> float:  # log P(cursor line's start + candidate + `suffix` tokens)
        return sum(c["plain"][: c["plain_head"] + suffix])

    def per_token(c: dict, suffix: int) -> float:
        return plain(c, suffix) / min(len(c["plain"]), c["plain_head"] + suffix)

    def suffix_only(c: dict, suffix: int) -> float:  # log P(the suffix's first tokens | ..., candidate)
        return sum(c["plain"][c["plain_head"] : c["plain_head"] + suffix])

    found: dict[str, Callable[[dict], float]] = {"engine": lambda c: c["engine_score"]}
    for suffix in (0, 8, 16, 32, 48, 64, 96, 128):
        found[f"plain+{suffix}"] = lambda c, s=suffix: plain(c, s)
        found[f"plain+{suffix}/token"] = lambda c, s=suffix: per_token(c, s)
        if suffix:
            found[f"suffix {suffix} only"] = lambda c, s=suffix: suffix_only(c, s)
    found["fim+end"] = lambda c: sum(c["fim"]) + c["fim_end"]
    found["fim+end/token"] = lambda c: (sum(c["fim"]) + c["fim_end"]) / (len(c["fim"]) + 1)
    for suffix in (32, 64, 128):
        found[f"plain+{suffix} + fim_end"] = lambda c, s=suffix: plain(c, s) + c["fim_end"]
        found[f"plain+{suffix} + fim+end"] = lambda c, s=suffix: plain(c, s) + sum(c["fim"]) + c["fim_end"]
    return found


def choose(candidates: list[dict], score: Callable[[dict], float]) -> dict:
    """The engine's ranking with `score` in the score's place."""
    return min(candidates, key=lambda c: (c["syntax"], c["unbalanced"], c["comments"], -score(c)))


def compare(args) -> None:
    rows = [json.loads(line) for path in args.records for line in path.open()]
    rows = [r for r in rows if r["candidates"]]
    print(f"{len(rows)} reranked holes from {', '.join(map(str, args.records))}")
    chosen_ok = sum(next((c["ok"] for c in r["candidates"] if c["text"] == r["chosen"]), False) for r in rows)
    reachable = sum(any(c["ok"] for c in r["candidates"]) for r in rows)
    print(f"  the engine's own choice: {chosen_ok}; some candidate passes: {reachable}")
    print(f"  {'rule':28} {'right':>13} {'same choice as the engine':>26}")
    for name, score in rules().items():
        choices = [choose(r["candidates"], score) for r in rows]
        ok = sum(c["ok"] for c in choices)
        same = sum(c["text"] == r["chosen"] for c, r in zip(choices, rows, strict=True))
        print(f"  {name:28} {ok:4d} ({100 * ok / len(rows):5.1f} %) {same:17d} ({100 * same / len(rows):5.1f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record")
    rec.add_argument("--suite", choices=("single", "multi", "santacoder"), default="multi")
    rec.add_argument("--limit", type=int, default=50)
    rec.add_argument("--every", type=int, default=0)
    rec.add_argument("--skip", type=int, default=0, help="resume: skip the first N tasks of the sample")
    rec.add_argument("--held-out", action="store_true", help="the tasks between the standard sample's (not --every)")
    rec.add_argument("--window", type=int, default=128, help="suffix tokens kept after each candidate")
    rec.add_argument("--model", default="blockfill-coder")
    rec.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    rec.add_argument("--out", type=Path, required=True)
    cmp = commands.add_parser("compare")
    cmp.add_argument("records", type=Path, nargs="+")
    args = parser.parse_args()
    record(args) if args.command == "record" else compare(args)


if __name__ == "__main__":
    main()
