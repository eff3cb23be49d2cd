"""`blockfill infill --ray`: the single-process CLI's tasks and rows, completed by a pool of Ray workers.

Ray Data's batch inference: the tasks become a dataset of one block a batch, and an actor pool maps it, each
actor holding one engine (the model loads once a worker) and completing a batch as `engine.batch.complete_tasks`
does in one process, so a task's completion is the same wherever it runs. The driver hands each batch's rows to
the caller as it comes back (the CLI appends them to its `.partial` file), so a finished result is on disk
before the next one arrives. A worker that dies is restarted and its batch redone by Ray (actor restarts and
task retries); a batch that comes back twice is written once.

Imported only when `--ray` is given: Ray is the optional extra `blockfill[ray]`.
"""

import argparse
import dataclasses
import logging
import math
import os
from pathlib import Path

import numpy as np

from engine.batch import RowSink, Task, complete_tasks, progress_bar, result_row
from engine.config import EngineConfig
from engine.errors import BlockfillError, ConfigError
from engine.infill import Engine

_TASK_FIELDS = [field.name for field in dataclasses.fields(Task)]


class InfillWorker:
    """One Ray actor: loads the model once, then completes the batches Ray Data hands it."""

    def __init__(self, config: EngineConfig, seed: int):
        # A model that does not load is raised by the first batch instead: Ray hands the driver a batch's
        # exception as it was, but a constructor's only as text.
        try:
            self.engine: Engine | BlockfillError = Engine(config)
        except BlockfillError as err:
            self.engine = err
        self.seed = seed

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        if isinstance(self.engine, BlockfillError):
            raise self.engine
        tasks = [Task(*fields) for fields in zip(*(batch[k] for k in _TASK_FIELDS), strict=True)]
        rows = [result_row(t, c) for t, c in zip(tasks, complete_tasks(self.engine, tasks, self.seed), strict=True)]
        return {key: [row[key] for row in rows] for key in rows[0]}


def run_tasks(config: EngineConfig, tasks: list[Task], args: argparse.Namespace, on_done: RowSink) -> None:
    """Complete `tasks` on the Ray cluster at `args.ray` ('local': a runtime started here for this run)."""
    if args.workers < 1 or args.cores_per_worker < 1 or args.gpus_per_worker < 0:
        raise ConfigError("--workers and --cores-per-worker must be at least 1, --gpus-per-worker at least 0")
    if Path(config.model).exists():  # a checkpoint directory: workers may not share the driver's directory
        config = dataclasses.replace(config, model=str(Path(config.model).resolve()))
    if config.threads == 0:
        config = dataclasses.replace(config, threads=args.cores_per_worker)
    if config.prompt_threads == 0:  # a worker's wide forwards keep to its own cores too
        config = dataclasses.replace(config, prompt_threads=args.cores_per_worker)
    ray = _import_ray(local=args.ray == "local")
    runtime = {"num_cpus": max(os.cpu_count() or 1, args.workers * args.cores_per_worker), "include_dashboard": False}
    ray.init(address=args.ray, logging_level=logging.WARNING, **(runtime if args.ray == "local" else {}))
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # one bar, ours, counting tasks written (and no notice that Ray's is off)
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
        context.print_on_execution_start = False
        context.raise_original_map_exception = True  # an engine error reaches the driver as itself
        dataset = ray.data.from_items(
            [dataclasses.asdict(t) for t in tasks], override_num_blocks=math.ceil(len(tasks) / args.batch_size)
        ).map_batches(
            InfillWorker,
            fn_constructor_args=(config, args.seed),
            batch_size=args.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=args.workers),
            num_cpus=args.cores_per_worker,
            num_gpus=args.gpus_per_worker,
        )
        written: set[str] = set()
        bar = progress_bar(len(tasks))
        for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
            rows = [row for row in table.to_pylist() if row["task_id"] not in written]
            written.update(row["task_id"] for row in rows)
            on_done(rows)
            bar.update(len(rows))
        bar.close()
    except ray.exceptions.RayError as err:
        raise _engine_error(err) or BlockfillError(f"the Ray run failed: {err}") from err
    finally:
        ray.shutdown()


def _engine_error(err: BaseException | None) -> BlockfillError | None:
    """The engine's own error (a model that does not load, a bad task) that a Ray error carries, if any."""
    while err is not None:
        inner = getattr(err, "cause", None)  # what a Ray task raised (Ray's error subclasses its type too)
        if inner is None and isinstance(err, BlockfillError):
            return err
        err = inner or err.__cause__
    return None


def _import_ray(local: bool):
    """Ray, or a message saying how to install it. A runtime started for one run serves this machine alone, so
    it is kept on loopback: Ray does that when told there is no multi-machine cluster, which it reads on import."""
    if local:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise ConfigError("--ray needs Ray: pip install 'blockfill[ray]'") from err
    return ray
