"""engine.threads: wide forwards (a prompt, the reranker's scores) take the cores other processes leave idle, thin
ones keep the engine's `threads`, and the engine's own count is given back afterwards. The load is read for real
from /proc/stat (Linux, as CI is); the policy's tests set it, since a test cannot choose what else runs."""

import subprocess
import sys
import time

import pytest
import torch

from engine import threads
from engine.threads import WIDE_FORWARD_TOKENS, OtherLoad, ThreadPolicy, torch_threads


@pytest.fixture
def one_thread():
    kept = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(kept)


def test_the_count_is_given_back_even_when_the_body_raises(one_thread):
    with torch_threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 1
    with pytest.raises(RuntimeError), torch_threads(2):
        raise RuntimeError("cancelled")
    assert torch.get_num_threads() == 1


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_another_process_counts_as_load_and_this_one_does_not():
    load = OtherLoad()
    spin = "import time\nend = time.time() + 0.8\nwhile time.time() < end: pass"
    subprocess.run([sys.executable, "-c", spin], check=True)
    others = load.cores()
    _spin(0.8)  # this process's own work
    own = load.cores()
    assert others is not None and own is not None
    assert others >= 0.6 and own < others - 0.4, (others, own)


def test_wide_forwards_widen_onto_idle_cores_only(one_thread, monkeypatch):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    policy = ThreadPolicy(narrow=1, wide=2)
    monkeypatch.setattr(OtherLoad, "cores", lambda self: 0.1)  # the other core idle
    assert policy.threads(WIDE_FORWARD_TOKENS - 1) == 1 and policy.threads(WIDE_FORWARD_TOKENS) == 2
    with policy.for_forward(WIDE_FORWARD_TOKENS):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 1
    monkeypatch.setattr(OtherLoad, "cores", lambda self: 0.9)  # a build on the other core
    assert policy.threads(WIDE_FORWARD_TOKENS) == 1
    monkeypatch.setattr(OtherLoad, "cores", lambda self: None)  # no /proc/stat: as before
    assert policy.threads(WIDE_FORWARD_TOKENS) == 1
    assert ThreadPolicy(narrow=1, wide=1).threads(1000) == 1
