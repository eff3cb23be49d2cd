"""README's first command, minus the install: the shipped blockfill-tiny fills the bundled example's holes."""

from pathlib import Path

import pytest

from engine.batch import split_holes
from engine.cli import main
from engine.models.loading import EMBEDDED_DIR

EXAMPLE = Path(__file__).parents[1] / "examples" / "fill_me.py"
pytestmark = pytest.mark.skipif(not (EMBEDDED_DIR / "model.safetensors").exists(), reason="embedded model not shipped")


def test_example_holes_are_filled_in_place(capsys):
    pieces = split_holes(EXAMPLE.read_text())
    assert main(["infill", "--input", str(EXAMPLE), "--explain"]) == 0
    captured = capsys.readouterr()
    filled = captured.out
    assert "<FILL>" not in filled
    assert filled.startswith(pieces[0]) and filled.endswith(pieces[-1])
    # The text between holes is untouched and in order (a hole may stay empty: post-processing can drop a
    # middle the model got wrong, and this model is weak).
    position = len(pieces[0])
    for piece in pieces[1:-1]:
        position = filled.index(piece, position) + len(piece)
    # Both holes sit in empty bodies after a block opener: tree-sitter must see Python and choose block mode.
    assert captured.err.count("mode=block") == 2, captured.err


def test_humaneval_task_through_jsonl(tmp_path):
    source = tmp_path / "tasks.jsonl"
    source.write_text('{"task_id": "demo/0", "prompt": "def add(a, b):\\n", "suffix": "\\n\\nprint(add(1, 2))\\n"}\n')
    out = tmp_path / "out.jsonl"
    assert main(["infill", "--input", str(source), "--output", str(out)]) == 0
    assert '"task_id": "demo/0"' in out.read_text()
