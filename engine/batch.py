"""Reading infilling tasks and writing their completions safely, for `blockfill infill`.

Inputs are JSON lines with HumanEval-Infilling's field names (`task_id`, `prompt` = the prefix, `suffix`,
optional `language`), plain or gzipped, or source files with hole markers. A bad line is reported with its
number and skipped. Output goes to `<output>.partial`, flushed after every batch, and is renamed over the
output only when the run completes, so an interrupted run loses nothing and `--resume` carries on from it.
"""

import gzip
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from engine.errors import InputError
from engine.infill import Completion, Engine, InfillRequest

HOLE_MARKER = "<FILL>"
MAX_SOURCE_BYTES = 10_000_000  # a file larger than this is not code a person is editing

RowSink = Callable[[list[dict]], None]  # takes a finished batch's result rows as they come back


@dataclass(frozen=True)
class Task:
    task_id: str
    prefix: str
    suffix: str
    language: str | None


@dataclass(frozen=True)
class BadLine:
    line_number: int
    problem: str


def complete_tasks(engine: Engine, tasks: list[Task], seed: int) -> list[Completion]:
    """The one way tasks are completed, in one process or on a Ray worker: every task gets the same seed, so its
    completion depends on neither its batch nor the worker that ran it."""
    requests = [InfillRequest(t.prefix, t.suffix, t.language, force=True) for t in tasks]
    return engine.complete(requests, seeds=[seed] * len(tasks))


def result_row(task: Task, completion: Completion) -> dict:
    """A task's line in the output (HumanEval-Infilling's `completion` field)."""
    return {
        "task_id": task.task_id,
        "completion": completion.text,
        "seconds": round(completion.seconds, 4),
        "steps": completion.steps,
    }


def progress_bar(total: int) -> tqdm:
    """Tasks done, on stderr (stdout may carry the results); hidden when stderr is not a terminal."""
    return tqdm(total=total, desc="infilling", unit="task", disable=None, file=sys.stderr)


def is_jsonl(path: Path) -> bool:
    return path.name.endswith((".jsonl", ".jsonl.gz", ".json.gz", ".ndjson"))


def read_jsonl_tasks(path: Path, default_language: str | None) -> Iterator[Task | BadLine]:
    """Tasks in file order; a line that is not a JSON object with the required string fields yields a BadLine."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    yield BadLine(number, f"not JSON ({err.msg})")
                    continue
                if not isinstance(row, dict):
                    yield BadLine(number, "not a JSON object")
                    continue
                missing = [k for k in ("task_id", "prompt", "suffix") if not isinstance(row.get(k), str)]
                if missing:
                    yield BadLine(number, f"missing or non-string field(s): {', '.join(missing)}")
                    continue
                language = row.get("language") if isinstance(row.get("language"), str) else default_language
                yield Task(row["task_id"], row["prompt"], row["suffix"], language)
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read {path}: {err}") from err


def read_source(path: Path) -> str:
    """A source file's text; refuses binary and huge files with a clear message."""
    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            raise InputError(f"{path} is larger than {MAX_SOURCE_BYTES // 1_000_000} MB; not completing it")
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read {path}: {err}") from err
    if b"\x00" in data:
        raise InputError(f"{path} looks binary (it contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path} is not UTF-8 text: {err}") from err


def split_holes(text: str, marker: str = HOLE_MARKER) -> list[str]:
    """The text between hole markers: n holes give n + 1 pieces."""
    pieces = text.split(marker)
    if len(pieces) < 2:
        raise InputError(f"no hole marker {marker!r} found: put it where the code should be filled in")
    return pieces


def fill_in_order(
    engine: Engine,
    pieces: list[str],
    name: str,
    language: str | None,
    seed: int,
    on_each: Callable[[Task, Completion], None],
) -> str:
    """The file with each hole filled in file order: a hole's prefix holds the earlier holes' fills (as for an
    editor user who accepted them, so a later hole reads code, not a line cut off where a marker was) and its
    suffix the rest of the file, the later markers removed."""
    text = pieces[0]
    for number, piece in enumerate(pieces[1:], start=1):
        task = Task(f"{name}#{number}", text, "".join(pieces[number:]), language)
        completion = complete_tasks(engine, [task], seed)[0]
        on_each(task, completion)
        text += completion.text + piece
    return text


def write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory and rename: readers see the old or the new file."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResumableJsonlWriter:
    """Appends result lines to `<output>.partial`; `finish()` renames it over `output`.

    With `resume`, task ids already in the output (from a finished run) or in the partial file (from an
    interrupted one) are reported by `done_ids` so the caller skips them.
    """

    def __init__(self, output: Path, resume: bool, overwrite: bool):
        self.output = output
        self.partial = output.with_name(output.name + ".partial")
        if output.exists() and not (resume or overwrite):
            raise InputError(f"{output} exists; pass --resume to continue it or --overwrite to replace it")
        kept: list[str] = []
        if resume:
            for source in (output, self.partial):
                if source.exists():
                    kept += [line for line in source.read_text(encoding="utf-8").splitlines() if _task_id(line)]
        self.done_ids = {_task_id(line) for line in kept}
        write_atomically(self.partial, "".join(line + "\n" for line in dict.fromkeys(kept)))
        self._file = open(self.partial, "a", encoding="utf-8")  # noqa: SIM115 - lives until finish()/close()

    def write(self, rows: list[dict]) -> None:
        for row in rows:
            self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def finish(self) -> None:
        self._file.close()
        os.replace(self.partial, self.output)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def _task_id(line: str) -> str | None:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row.get("task_id") if isinstance(row, dict) else None
