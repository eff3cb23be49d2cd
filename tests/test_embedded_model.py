"""README's first command, minus the install: the default model fills the bundled example so that it runs."""

import subprocess
import sys
from pathlib import Path

import pytest

from engine.batch import split_holes
from engine.cli import main
from engine.models.catalog import CATALOG, is_installed

EXAMPLE = Path(__file__).parents[1] / "examples" / "fill_me.py"
BASE = CATALOG[CATALOG["blockfill-coder"].base]
pytestmark = pytest.mark.skipif(
    not is_installed(BASE),
    reason=f"{BASE.name} is not installed: `blockfill models fetch blockfill-coder` (setup.sh does it)",
)


def test_example_holes_are_filled_with_code_that_runs(capsys, tmp_path):
    pieces = split_holes(EXAMPLE.read_text())
    assert main(["infill", "--input", str(EXAMPLE), "--explain"]) == 0
    captured = capsys.readouterr()
    filled = captured.out
    assert "<FILL>" not in filled
    assert filled.startswith(pieces[0]) and filled.endswith(pieces[-1])
    position = len(pieces[0])  # the text between holes is untouched and in order
    for piece in pieces[1:-1]:
        position = filled.index(piece, position) + len(piece)
    # The first hole ends a line, the second is an empty body after a block opener: tree-sitter decides.
    assert [line.split("mode=")[1].split()[0] for line in captured.err.splitlines() if "mode=" in line] == [
        "line",
        "block",
    ], captured.err
    program, words = tmp_path / "filled.py", tmp_path / "words.txt"
    program.write_text(filled)
    words.write_text("one two three\nfour five\n")
    ran = subprocess.run([sys.executable, str(program), str(words)], capture_output=True, text=True, timeout=60)
    assert ran.stdout == "5 words in words.txt\n", (filled, ran.stderr)


def test_humaneval_task_through_jsonl(tmp_path):
    source = tmp_path / "tasks.jsonl"
    source.write_text('{"task_id": "demo/0", "prompt": "def add(a, b):\\n", "suffix": "\\n\\nprint(add(1, 2))\\n"}\n')
    out = tmp_path / "out.jsonl"
    assert main(["infill", "--input", str(source), "--output", str(out)]) == 0
    assert '"task_id": "demo/0"' in out.read_text()
