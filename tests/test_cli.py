"""`blockfill infill` on the toy checkpoint: real engine, real files, every bad input the issue lists."""

import gzip
import hashlib
import json
import subprocess
import sys

import pytest

from engine.batch import Task, fill_in_order
from engine.cli import main
from engine.config import EngineConfig
from engine.infill import Completion, Engine
from tests.toy_model import toy_texts


def _task(task_id: str, word: str) -> str:
    prefix, _, suffix = toy_texts(word)
    return json.dumps({"task_id": task_id, "prompt": prefix, "suffix": suffix})


@pytest.fixture
def tasks_file(tmp_path):
    lines = [
        _task("t/0", "golf"),
        "{not json",
        _task("t/1", "kilo"),
        json.dumps({"task_id": "t/x"}),
        _task("t/2", "lima"),
    ]
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_lines_are_reported_skipped_and_fail_the_run(toy_checkpoint, tasks_file, tmp_path, capsys):
    before = _digest(tasks_file)
    out = tmp_path / "out.jsonl"
    code = main(["infill", "--input", str(tasks_file), "--output", str(out), "--model", str(toy_checkpoint)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{tasks_file}:2: skipped: not JSON" in err
    assert f"{tasks_file}:4: skipped: missing or non-string field(s): prompt, suffix" in err
    assert "3 tasks completed" in err and "2 bad input lines skipped" in err
    rows = _rows(out)
    assert [r["task_id"] for r in rows] == ["t/0", "t/1", "t/2"]
    assert all(set(r) == {"task_id", "completion", "seconds", "steps"} for r in rows)
    assert [r["completion"] for r in rows] == ["golf", "kilo", "lima"]
    assert _digest(tasks_file) == before
    assert not (tmp_path / "out.jsonl.partial").exists()


def test_limit_and_gzip_input(toy_checkpoint, tmp_path):
    source = tmp_path / "tasks.jsonl.gz"
    with gzip.open(source, "wt") as f:
        f.write("\n".join(_task(f"g/{i}", w) for i, w in enumerate(["echo", "hotel", "india"])) + "\n")
    out = tmp_path / "out.jsonl"
    assert (
        main(["infill", "--input", str(source), "--output", str(out), "--limit", "2", "--model", str(toy_checkpoint)])
        == 0
    )
    assert [r["task_id"] for r in _rows(out)] == ["g/0", "g/1"]


def test_resume_continues_an_interrupted_run(toy_checkpoint, tmp_path):
    source = tmp_path / "tasks.jsonl"
    source.write_text("\n".join(_task(f"r/{i}", w) for i, w in enumerate(["alpha", "bravo", "delta"])) + "\n")
    out = tmp_path / "out.jsonl"
    # What an interrupted run leaves: one finished task in the partial file, the output not yet there.
    earlier = {"task_id": "r/0", "completion": "from before", "seconds": 0.1, "steps": 3}
    (tmp_path / "out.jsonl.partial").write_text(json.dumps(earlier) + "\n")
    assert (
        main(["infill", "--input", str(source), "--output", str(out), "--resume", "--model", str(toy_checkpoint)]) == 0
    )
    rows = _rows(out)
    assert [r["task_id"] for r in rows] == ["r/0", "r/1", "r/2"]
    assert rows[0] == earlier  # kept, not recomputed
    assert [r["completion"] for r in rows[1:]] == ["bravo", "delta"]


def test_existing_output_is_not_replaced_without_asking(toy_checkpoint, tasks_file, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    assert main(["infill", "--input", str(tasks_file), "--output", str(out), "--model", str(toy_checkpoint)]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert out.read_text() == "precious\n"


def test_output_may_not_be_the_input(toy_checkpoint, tasks_file, capsys):
    before = _digest(tasks_file)
    assert (
        main(["infill", "--input", str(tasks_file), "--output", str(tasks_file), "--model", str(toy_checkpoint)]) == 2
    )
    assert "never overwrites its input" in capsys.readouterr().err
    assert _digest(tasks_file) == before


def test_source_file_holes_are_filled_and_printed(toy_checkpoint, tmp_path, capsys):
    source = tmp_path / "fill_me.py"
    source.write_text("value = <FILL>\njuliet = value\n")
    assert main(["infill", "--input", str(source), "--model", str(toy_checkpoint), "--explain"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "value = juliet\njuliet = value\n"
    assert "mode=" in captured.err and "canvas=" in captured.err
    assert source.read_text() == "value = <FILL>\njuliet = value\n"


def test_source_file_holes_fill_in_order_each_reading_the_earlier_fills(toy_checkpoint, tmp_path, capsys):
    pieces = ["value = ", "\njuliet = value\nother = ", "\necho = other\n"]
    seen: list[tuple[Task, Completion]] = []
    engine = Engine(EngineConfig(model=str(toy_checkpoint), device="cpu", drop_syntax_errors=False))
    text = fill_in_order(engine, pieces, "f.py", "python", 0, lambda *done: seen.append(done))
    (first, filled), (second, _) = seen
    assert filled.text  # a fill the second hole must read
    assert first == Task("f.py#1", "value = ", pieces[1] + pieces[2], "python")
    assert second == Task("f.py#2", "value = " + filled.text + pieces[1], pieces[2], "python")
    assert text.startswith(second.prefix) and text.endswith(pieces[2])
    source = tmp_path / "two.py"
    source.write_text("<FILL>".join(pieces))
    assert main(["infill", "--input", str(source), "--model", str(toy_checkpoint), "--ray", "auto"]) == 2
    assert "fill in order" in capsys.readouterr().err


def test_source_file_output_is_written_atomically(toy_checkpoint, tmp_path):
    source, out = tmp_path / "a.py", tmp_path / "b.py"
    source.write_text("value = <FILL>\necho = value\n")
    assert main(["infill", "--input", str(source), "--output", str(out), "--model", str(toy_checkpoint)]) == 0
    assert out.read_text() == "value = echo\necho = value\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\x7fELF\x00\x01binary", "looks binary"), (b"x = 1\n", "no hole marker"), (b"\xff\xfe bad", "not UTF-8")],
)
def test_unusable_source_files(toy_checkpoint, tmp_path, capsys, content, message):
    source = tmp_path / "input.py"
    source.write_bytes(content)
    assert main(["infill", "--input", str(source), "--model", str(toy_checkpoint)]) == 2
    assert message in capsys.readouterr().err


def test_missing_model_is_a_message_not_a_traceback(tasks_file, tmp_path, capsys):
    code = main(
        ["infill", "--input", str(tasks_file), "--output", str(tmp_path / "o.jsonl"), "--model", "/no/such/model"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and "Traceback" not in err


def test_console_script_runs(toy_checkpoint, tmp_path):
    source = tmp_path / "fill_me.py"
    source.write_text("value = <FILL>\nhotel = value\n")
    blockfill = subprocess.run(
        [sys.executable, "-m", "engine.cli", "infill", "--input", str(source), "--model", str(toy_checkpoint)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert blockfill.returncode == 0, blockfill.stderr
    assert blockfill.stdout == "value = hotel\nhotel = value\n"


def test_export_writes_a_loadable_checkpoint_with_its_card(tmp_path, capsys):
    """`blockfill export` on a two-step training run (the micro architecture on a few stdlib files)."""
    from engine.models.loading import load_model
    from engine.training.train import TrainConfig, run_training

    run_dir = tmp_path / "run"
    config = TrainConfig(
        out_dir=str(run_dir), architecture="micro", vocab_size=400, tokenizer_sample_mb=1, steps=2,
        batch_size=2, eval_every=2, eval_batches=1, save_every=2, canvas_lengths=[8],
        max_prefix_tokens=32, max_suffix_tokens=16, languages="python:1",
    )  # fmt: skip
    run_training(config, corpus_limit=40)
    assert main(["export", "--run", str(run_dir), "--to", str(tmp_path / "model")]) == 0
    loaded = load_model(str(tmp_path / "model"), device="cpu")
    assert loaded.limits.max_canvas == 8 and loaded.limits.max_prefix_tokens == 32
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert "cpython-stdlib" in card and "| 2 |" in card
