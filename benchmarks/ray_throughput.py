"""Holes a second in one process, on one Ray worker and on two, side by side, and what starting them costs.

    python -m benchmarks.ray_throughput --limit 96                  HumanEval single-line holes, blockfill-tiny
    python -m benchmarks.ray_throughput --gpus-per-worker 0.5       two workers sharing one GPU (a GPU machine)

Each configuration completes the same holes through what `blockfill infill` runs (`run_in_process`, or
`engine.distributed.run_tasks` on a local Ray runtime started and stopped for that run), timed at the driver as
each batch's rows come back. `first` is the time to the first result (runtime, worker processes, model loads,
one batch); `steady` the rate after it; `overhead` what the run lost against that rate from its start
(wall - holes / steady): the price of starting, paid once a run, by each worker in parallel.
"""

import argparse
import time

from benchmarks.quality import DATA, load_tasks
from engine.batch import Task
from engine.cli import run_in_process
from engine.config import parse_assignments, with_overrides


def timed(run, config, tasks: list[Task], args: argparse.Namespace) -> list[float]:
    """Seconds from the start at which each task's row came back."""
    began, arrivals = time.perf_counter(), []
    run(config, tasks, args, lambda rows: arrivals.extend([time.perf_counter() - began] * len(rows)))
    return arrivals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--suite", default="single", help="a benchmarks.quality suite (default single)")
    parser.add_argument("--limit", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", default="1,2", help="Ray pool sizes to run, comma-separated")
    parser.add_argument("--cores-per-worker", type=int, default=1)
    parser.add_argument("--gpus-per-worker", type=float, default=0)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    config = with_overrides({"model": args.model, "drop_syntax_errors": False, **parse_assignments(args.set)})
    tasks = [Task(t["task_id"], t["prompt"], t["suffix"], "python") for t in load_tasks(args.suite, DATA, args.limit)]
    runs = [
        ("one process, no Ray", run_in_process, argparse.Namespace(seed=0, batch_size=args.batch_size, explain=False))
    ]
    if args.workers:
        from engine.distributed import run_tasks

        for workers in map(int, args.workers.split(",")):
            ray_args = argparse.Namespace(**{**vars(args), "ray": "local", "seed": 0, "workers": workers})
            runs.append((f"Ray, {workers} worker{'s' * (workers > 1)}", run_tasks, ray_args))
    print(f"{len(tasks)} {args.suite} holes, model {args.model}, batch {args.batch_size}, {args.cores_per_worker} "
          f"core(s) and {args.gpus_per_worker} GPU a worker")  # fmt: skip
    print("| run | wall s | holes/s | first result s | steady holes/s | overhead s |")
    print("|---|---|---|---|---|---|")
    for name, run, run_args in runs:
        arrivals = timed(run, with_overrides({"threads": args.cores_per_worker}, config), tasks, run_args)
        first, wall = arrivals[0], arrivals[-1]
        steady = (len(arrivals) - arrivals.count(first)) / (wall - first) if wall > first else float("nan")
        print(
            f"| {name} | {wall:.1f} | {len(tasks) / wall:.2f} | {first:.1f} | {steady:.2f} | "
            f"{wall - len(tasks) / steady:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
