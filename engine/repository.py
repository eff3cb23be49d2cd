"""Holes cut from a source tree, for `blockfill infill --repo DIR --holes SPEC`.

"Fill every hole in this repository" is one command: each hole is a task like any other (a file with one span
removed), and what was removed is kept as the task's answer, so a run can be scored the way benchmarks score
HumanEval-Infilling (`benchmarks/exact_match.py`). Holes are whole lines, as in HumanEval-Infilling, and are the
same on every run over the same tree, spec and seed, so `--resume` finds its task ids again.
"""

import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tree_sitter import Node

from engine.batch import Task, read_source
from engine.errors import InputError
from engine.languages import language_from_path, parser_for

_SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "venv", "site-packages"})
# Definitions whose body is a hole: any node with a `body` field and one of these in its type.
_FUNCTION_WORDS = ("function", "method", "constructor")


@dataclass(frozen=True)
class Hole:
    task: Task
    middle: str  # the text cut out: the answer


def source_files(root: Path) -> Iterator[Path]:
    """Files with a known language under `root`, in a stable order; hidden and dependency folders are skipped."""
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if any(p.startswith(".") or p in _SKIPPED_DIRS for p in parts[:-1]) or parts[-1].startswith("."):
            continue
        if path.is_file() and language_from_path(path.name):
            yield path


def make_holes(root: Path, spec: str, seed: int) -> tuple[list[Hole], list[str]]:
    """Holes for every source file under `root` by `spec`, and a message for each file that could not be read.

    `functions`: every function or method body that starts and ends on lines of its own. `lines:N`: N lines with
    code in them a file, drawn with a generator seeded by `seed` and the file's path (another file leaves a
    file's holes alone).
    """
    kind, _, count = spec.partition(":")
    if not (kind == "functions" and not count) and not (kind == "lines" and count.isdigit() and int(count) > 0):
        raise InputError(f"--holes {spec!r}: expected 'functions' or 'lines:N' with N > 0")
    if not root.is_dir():
        raise InputError(f"--repo {root}: not a directory")
    holes: list[Hole] = []
    skipped: list[str] = []
    for path in source_files(root):
        name = path.relative_to(root).as_posix()
        try:
            text = read_source(path)
        except InputError as err:
            skipped.append(str(err))
            continue
        language = language_from_path(name)
        lines = text.splitlines(keepends=True)
        if kind == "functions":
            spans = _function_bodies(text, language)
        else:
            code = [i for i, line in enumerate(lines) if any(c.isalnum() for c in line)]
            rng = random.Random(f"{seed}:{name}")
            spans = [(i, i) for i in sorted(rng.sample(code, min(int(count), len(code))))]
        starts = [0, *itertools.accumulate(len(line) for line in lines)]  # line -> its first character
        for first, last in spans:
            cut, end = starts[first], starts[last + 1]
            if text[cut:end].strip():
                holes.append(Hole(Task(f"{name}:{first + 1}", text[:cut], text[end:], language), text[cut:end]))
    return holes, skipped


def holes_jsonl(holes: list[Hole]) -> str:
    """The holes as HumanEval-Infilling task lines (`canonical_solution` is the answer): a valid `--input`."""
    rows = (
        {
            "task_id": h.task.task_id,
            "prompt": h.task.prefix,
            "suffix": h.task.suffix,
            "canonical_solution": h.middle,
            "language": h.task.language,
        }
        for h in holes
    )
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _function_bodies(text: str, language: str | None) -> list[tuple[int, int]]:
    """(first, last) line of each function body's inside: a Python block, or what lies between a brace on the
    header's line and a brace on a line of its own. Bodies that share a line with other code are left out."""
    parser = parser_for(language)
    if parser is None:
        return []
    source = text.encode("utf-8")
    spans: set[tuple[int, int]] = set()
    stack = [parser.parse(source).root_node]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        body = node.child_by_field_name("body")
        if body is None or not any(word in node.type for word in _FUNCTION_WORDS):
            continue
        span = _inside(body, source)
        if span is not None and span[0] <= span[1]:
            spans.add(span)
    return sorted(spans)


def _inside(body: Node, source: bytes) -> tuple[int, int] | None:
    """The first and last line of what is inside `body`, or None when the body shares a line with other code."""
    before = source[body.start_byte - body.start_point.column : body.start_byte]
    if source[body.start_byte : body.start_byte + 1] != b"{":  # Python: the block starts its own line
        return None if before.strip() else (body.start_point.row, body.end_point.row)
    opener_line_end = source.find(b"\n", body.start_byte)
    after_opener = source[body.start_byte + 1 : opener_line_end if opener_line_end >= 0 else body.end_byte]
    before_closer = source[body.end_byte - body.end_point.column : body.end_byte - 1]
    if after_opener.strip() or before_closer.strip():
        return None
    return body.start_point.row + 1, body.end_point.row - 1
