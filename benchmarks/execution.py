"""Run a HumanEval-Infilling program for real: a separate process, a time limit, memory and CPU limits, no
network, in an empty temporary directory. (The upstream harness ships with its exec line commented out and
reports 100 %.)"""

import os
import resource
import subprocess
import sys
import tempfile

# Prepended to every program: no sockets, so a completion cannot reach the network.
_NO_NETWORK = (
    "import socket as _s\n"
    "def _blocked(*a, **k):\n    raise OSError('network disabled in blockfill benchmarks')\n"
    "_s.socket = _blocked; _s.create_connection = _blocked\n"
)
MEMORY_LIMIT = 1 << 30  # 1 GiB of address space


def _limit_resources(cpu_seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    os.setsid()


def humaneval_program(task: dict, completion: str) -> str:
    return task["prompt"] + completion + task["suffix"] + "\n" + task["test"] + "\n" + f"check({task['entry_point']})\n"


def passes(program: str, timeout: float = 3.0) -> bool:
    """True when `program` exits 0 within `timeout` seconds."""
    with tempfile.TemporaryDirectory() as workdir:
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-c", _NO_NETWORK + program],
                cwd=workdir,
                capture_output=True,
                timeout=timeout,
                preexec_fn=lambda: _limit_resources(int(timeout) + 1),
                env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
            )
        except subprocess.TimeoutExpired:
            return False
    return done.returncode == 0
