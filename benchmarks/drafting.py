"""blockfill-coder against its own base, side by side on the same holes in one process: what drafting buys.

    python -m benchmarks.drafting [--model blockfill-coder] [--suite single] [--every 5] [--limit 40]
                                  [--arms base,lookup,verified,masks,unverified]

One loaded model serves every arm (the adapter is off where the block size is 0) unless an arm names another
(`verified:model=runs/my-run/adapter`: two adapters side by side), the arms take turns hole by hole so a busy
machine slows them alike, and every hole is executed for real (HumanEval) or matched (SantaCoder).
Arms: the base left to right (block 0, the quality floor and the anchor); the base with lookup drafts copied from
the prompt (`lookup_tokens`, no adapter, verified: the base's middle); drafting with verification, lookup drafts
first and the adapter's where there are none (the base's middle); the adapter's drafts alone (`masks`); and
drafting without verification (drafts kept on confidence alone).
"""

import argparse
import statistics
import time

from benchmarks.execution import humaneval_program, passes
from benchmarks.quality import DATA, first_line, load_tasks, typed_partway
from engine.config import parse_assignments, with_overrides
from engine.infill import Engine, InfillRequest
from engine.models.loading import load_model

ARMS = {  # --arms key: (name, settings)
    "base": ("base, left to right", {"block_size": 0, "lookup_tokens": 0}),
    "verified": ("lookup + masks, verified", {"block_size": -1}),
    "masks": ("masks alone, verified", {"block_size": -1, "lookup_tokens": 0}),
    "unverified": ("drafting, unverified", {"block_size": -1, "verify_drafts": False}),
    "lookup": ("base, lookup drafts", {"block_size": 0, "lookup_tokens": 8}),
}


def _arm(spec: str) -> tuple[str, dict]:
    """`verified:draft_threshold=0.3` -> the arm's name and settings, with that setting changed."""
    key, *extra = spec.split(":")
    name, settings = ARMS[key]
    changes = parse_assignments(extra)
    return (f"{name} ({', '.join(extra)})" if extra else name), {**settings, **changes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", default="blockfill-coder")
    parser.add_argument("--suite", choices=("single", "multi", "santacoder"), default="single")
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="for every arm")
    parser.add_argument("--typed", action="store_true", help="HumanEval: the hole's line typed partway (line mode)")
    parser.add_argument(
        "--arms",
        default="base,lookup,verified",
        help=f"of {', '.join(ARMS)}, the first the anchor; an arm may add settings: verified:draft_threshold=0.3, "
        "or run another model: verified:model=runs/my-run/adapter",
    )
    args = parser.parse_args()

    shared = with_overrides({"model": args.model, **parse_assignments(args.set)})
    arms = [(name, with_overrides(arm, shared)) for name, arm in map(_arm, args.arms.split(","))]
    loaded = {}  # model name -> the model, loaded once for the arms that run it
    for _, config in arms:
        if config.model not in loaded:
            loaded[config.model] = load_model(config.model, config.device, quantize=config.quantize)
    engines = {name: Engine(config, loaded[config.model]) for name, config in arms}
    tasks = load_tasks(args.suite, DATA, args.limit, args.every)
    if args.typed:
        tasks = typed_partway(tasks)
    rows: dict[str, list[tuple[bool, float, int, int, str]]] = {name: [] for name in engines}
    for task in tasks:
        language = task.get("language", "python")
        request = InfillRequest(task["prompt"], task["suffix"], language, force=True)
        for name, engine in engines.items():
            began = time.perf_counter()
            completion = engine.complete([request])[0]
            seconds = time.perf_counter() - began
            if args.suite == "santacoder":
                ok = first_line(completion.text) == first_line(task["canonical_solution"])
            else:
                ok = passes(humaneval_program(task, completion.text))
            rows[name].append((ok, seconds, completion.tokens, completion.steps, completion.raw_text))
    base = rows[arms[0][0]]
    base_seconds = statistics.median(r[1] for r in base)
    device = next(iter(loaded.values())).device
    typed = ", the hole's line typed partway" if args.typed else ""
    print(f"{args.suite}{typed}, {len(tasks)} tasks (every {args.every}th), model {args.model}, {device}:")
    width = max(len(name) for name in rows)
    for name, results in rows.items():
        median = statistics.median(r[1] for r in results)
        same = sum(r[4] == b[4] for r, b in zip(results, base, strict=True))
        print(
            f"  {name:{width}} score {100 * sum(r[0] for r in results) / len(results):5.1f} %; "
            f"tokens a step {sum(r[2] for r in results) / sum(r[3] for r in results):.2f}; "
            f"median {1000 * median:.0f} ms a hole ({base_seconds / median:.2f}x the first arm's); "
            f"same middle as the first arm {same}/{len(results)}"
        )


if __name__ == "__main__":
    main()
