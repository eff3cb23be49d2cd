"""`blockfill infill --ray` on a real Ray cluster: `ray start --head` on loopback with two one-CPU workers.

Against the single-process CLI: the same completions for the same seed, nothing finished lost when a worker or the
driver is killed mid-run, `--resume` finishing an interrupted run, bad lines reported with their numbers.
"""

import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from engine.cli import main
from tests.toy_model import WORDS, toy_texts

RAY = str(Path(sys.executable).with_name("ray"))
WORKER_TITLE = "ray::MapWorker(MapBatches(InfillWorker)).submit"  # a worker while it completes a batch
SEED = ["--seed", "3"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """The cluster's address, and the environment a driver needs to join it (its token)."""
    env = {
        **os.environ,
        # Ray swaps 127.0.0.1 for the machine's outward address unless it is told this is a one-machine cluster.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }
    port = _free_port()
    start = [RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2"]
    start += ["--include-dashboard=false", "--disable-usage-stats", "--object-store-memory=200000000"]
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=180)


def _tasks(path: Path, count: int, bad: dict[int, str] | None = None) -> None:
    """`count` toy tasks (task i is WORDS[i % 12]'s), with bad lines at the given line numbers."""
    lines = []
    for i in range(count):
        prefix, _, suffix = toy_texts(WORDS[i % len(WORDS)])
        lines.append(json.dumps({"task_id": f"t/{i}", "prompt": prefix, "suffix": suffix}))
    for number, line in sorted((bad or {}).items()):
        lines.insert(number - 1, line)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def single_process(toy_checkpoint, tmp_path_factory) -> list[str]:
    """What one process completes for each of the 12 distinct tasks, with the seed the Ray runs use."""
    source, out = tmp_path_factory.mktemp("single") / "tasks.jsonl", tmp_path_factory.mktemp("single") / "out.jsonl"
    _tasks(source, len(WORDS))
    assert main(["infill", "--input", str(source), "--output", str(out), "--model", str(toy_checkpoint), *SEED]) == 0
    return [row["completion"] for row in _rows(out)]


def _same_as_one_process(rows: list[dict], single_process: list[str]) -> bool:
    return all(r["completion"] == single_process[int(r["task_id"][2:]) % len(WORDS)] for r in rows)


def _infill(address: str, *argv: str) -> list[str]:
    command = [sys.executable, "-m", "engine.cli", "infill", *argv]
    return [*command, "--ray", address, "--workers", "2", "--batch-size", "1", *SEED]


def _rows(path: Path) -> list[dict]:
    """The whole lines of a JSON-lines file (one being written may end in part of a line)."""
    return [json.loads(line) for line in path.read_text().split("\n")[:-1]] if path.exists() else []


def _busy_worker() -> psutil.Process | None:
    return next(
        (p for p in psutil.process_iter(["cmdline"]) if WORKER_TITLE in " ".join(p.info["cmdline"] or [])), None
    )


def _wait_for(condition, what: str, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")


def test_a_repository_on_ray_gets_the_single_process_completions(toy_checkpoint, ray_cluster, tmp_path):
    address, env = ray_cluster
    repo = tmp_path / "repo"
    repo.mkdir()
    for i, word in enumerate(WORDS[:4]):
        prefix, middle, suffix = toy_texts(word)
        (repo / f"m{i}.py").write_text(f"def f{i}():\n    {prefix}{middle}{suffix.rstrip()}\n    return value\n")
    common = ["--repo", str(repo), "--holes", "lines:2", "--model", str(toy_checkpoint)]
    single, distributed, holes = tmp_path / "single.jsonl", tmp_path / "ray.jsonl", tmp_path / "holes.jsonl"
    assert main(["infill", *common, *SEED, "--output", str(single)]) == 0
    run = subprocess.run(
        _infill(address, *common, "--output", str(distributed), "--holes-out", str(holes)),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert "8 tasks completed" in run.stderr
    by_id = {r["task_id"]: r for r in _rows(single)}
    rows = _rows(distributed)
    assert sorted(r["task_id"] for r in rows) == sorted(by_id) == sorted(json.loads(h)["task_id"] for h in holes.open())
    assert all(set(r) == {"task_id", "completion", "seconds", "steps"} for r in rows)
    assert {r["task_id"]: (r["completion"], r["steps"]) for r in rows} == {
        i: (r["completion"], r["steps"]) for i, r in by_id.items()
    }
    assert not (tmp_path / "ray.jsonl.partial").exists()


def test_a_worker_killed_mid_run_loses_no_finished_result(toy_checkpoint, ray_cluster, single_process, tmp_path):
    address, env = ray_cluster
    source, out = tmp_path / "tasks.jsonl", tmp_path / "out.jsonl"
    _tasks(source, 160)
    partial = tmp_path / "out.jsonl.partial"
    argv = _infill(address, "--input", str(source), "--output", str(out), "--model", str(toy_checkpoint))
    with subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True) as run:
        _wait_for(lambda: _rows(partial), "the first result")
        worker = _wait_for(_busy_worker, "a worker completing a batch")
        written = _rows(partial)
        os.kill(worker.pid, signal.SIGKILL)
        _, err = run.communicate(timeout=600)
    assert run.returncode == 0, err
    assert len(written) < 160, "the run ended before the worker was killed"
    rows = _rows(out)
    assert sorted(r["task_id"] for r in rows) == sorted(f"t/{i}" for i in range(160))  # each once
    assert all(row in rows for row in written)
    assert _same_as_one_process(rows, single_process)


def test_resume_finishes_a_run_whose_driver_was_killed(toy_checkpoint, ray_cluster, single_process, tmp_path):
    address, env = ray_cluster
    source, out = tmp_path / "tasks.jsonl", tmp_path / "out.jsonl"
    _tasks(source, 60, bad={3: "{not json", 10: json.dumps({"task_id": "t/x"})})
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    partial = tmp_path / "out.jsonl.partial"
    argv = _infill(address, "--input", str(source), "--output", str(out), "--model", str(toy_checkpoint))
    with subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True) as run:
        _wait_for(lambda: len(_rows(partial)) >= 3, "three results")
        run.kill()
        _, err = run.communicate(timeout=60)
    assert f"{source}:3: skipped: not JSON" in err
    assert f"{source}:10: skipped: missing or non-string field(s): prompt, suffix" in err
    written = _rows(partial)
    assert 3 <= len(written) < 60 and not out.exists()
    resumed = subprocess.run([*argv, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 1, resumed.stderr  # the bad lines fail the run, as in one process
    assert f"{source}:3: skipped" in resumed.stderr and "2 bad input lines skipped" in resumed.stderr
    assert f"{60 - len(written)} tasks completed" in resumed.stderr
    rows = _rows(out)
    assert rows[: len(written)] == written  # kept, not recomputed
    assert sorted(r["task_id"] for r in rows) == sorted(f"t/{i}" for i in range(60))
    assert _same_as_one_process(rows, single_process)
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before and not partial.exists()
