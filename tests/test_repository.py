"""Repository mode: holes cut from a real source tree, filled by `blockfill infill --repo`, scored by exact match."""

import json

import pytest

from benchmarks.exact_match import exact_match
from engine.cli import main
from engine.errors import InputError
from engine.repository import make_holes

PYTHON = '''import os


def add(a, b):
    """Add."""
    return a + b


class K:
    @staticmethod
    def one(): return 1

    def two(self):
        def inner():
            return 2
        return inner()
'''
GO = "package main\n\nfunc add(a int, b int) int {\n\tc := a + b\n\treturn c\n}\n\nfunc one() int { return 1 }\n"
JS = "function f(x) {\n  const y = x * 2;\n  return y;\n}\nconst g = (a) => {\n  return a;\n};\n"


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    for name, text in {"src/a.py": PYTHON, "src/b.go": GO, "web/c.js": JS, "README.md": "# not code\n"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "src" / "blob.py").write_bytes(b"x = 1\x00")
    (root / "node_modules" / "dep").mkdir(parents=True)
    (root / "node_modules" / "dep" / "d.js").write_text(JS)
    (root / ".git").mkdir()
    (root / ".git" / "hook.py").write_text(PYTHON)
    return root


def test_function_bodies_become_holes_and_the_rest_stays(repo):
    holes, skipped = make_holes(repo, "functions", seed=0)
    assert skipped == [f"{repo / 'src' / 'blob.py'} looks binary (it contains NUL bytes)"]
    middles = {h.task.task_id: h.middle for h in holes}
    assert middles == {
        "src/a.py:5": '    """Add."""\n    return a + b\n',
        "src/a.py:14": "        def inner():\n            return 2\n        return inner()\n",
        "src/a.py:15": "            return 2\n",
        "src/b.go:4": "\tc := a + b\n\treturn c\n",
        "web/c.js:2": "  const y = x * 2;\n  return y;\n",
        "web/c.js:6": "  return a;\n",
    }  # one-line bodies (`def one(): return 1`, `{ return 1 }`) share a line with code: not holes
    for hole in holes:
        source = (repo / hole.task.task_id.split(":")[0]).read_text()
        assert hole.task.prefix + hole.middle + hole.task.suffix == source
    assert {h.task.language for h in holes} == {"python", "go", "javascript"}


def test_random_lines_are_seeded_per_file(repo):
    first, _ = make_holes(repo, "lines:2", seed=7)
    again, _ = make_holes(repo, "lines:2", seed=7)
    other, _ = make_holes(repo, "lines:2", seed=8)
    assert first == again and first != other
    assert len(first) == 6  # two lines in each of the three source files
    assert all(h.middle.strip() and h.middle.endswith("\n") and h.middle.count("\n") == 1 for h in first)


@pytest.mark.parametrize("spec", ["lines", "lines:0", "blocks", "functions:3"])
def test_a_bad_spec_is_a_message(repo, spec):
    with pytest.raises(InputError, match="expected 'functions' or 'lines:N'"):
        make_holes(repo, spec, seed=0)


def test_one_command_fills_a_repository_and_its_output_scores(toy_checkpoint, repo, tmp_path, capsys):
    out, holes_file = tmp_path / "out.jsonl", tmp_path / "holes.jsonl"
    argv = ["infill", "--repo", str(repo), "--holes", "functions", "--model", str(toy_checkpoint)]
    assert main([*argv, "--output", str(out), "--holes-out", str(holes_file)]) == 0
    assert "looks binary" in capsys.readouterr().err
    holes = [json.loads(line) for line in holes_file.read_text().splitlines()]
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["task_id"] for r in results] == [h["task_id"] for h in holes]
    assert set(holes[0]) == {"task_id", "prompt", "suffix", "canonical_solution", "language"}
    assert sum(total for _, total in exact_match(holes, results).values()) == 6
    perfect = [{"task_id": h["task_id"], "completion": h["canonical_solution"]} for h in holes]
    assert exact_match(holes, perfect) == {"go": (1, 1), "javascript": (2, 2), "python": (3, 3)}
    without_go = [r for r in perfect if not r["task_id"].startswith("src/b.go")]
    assert exact_match(holes, without_go)["go"] == (0, 1)  # a hole without a result is a miss
