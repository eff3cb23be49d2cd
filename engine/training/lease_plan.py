"""The `run` calls of one GPU lease: what each carries, its command, and how long it should take.

The device tool's limits (its README) decide the shape: a call takes the working tree plus at most 8 carried paths,
64 MiB in all; it returns at most 8 files of 16 MiB, 64 MiB together; a command runs at most 10 minutes; a lease
has 15 minutes, the machine's start included; files outside the tree survive only while the machine is warm (the
next call within 30 s). The seconds below are estimates until a lease measures them: the plan prints them so a
session can see where the 15 minutes go, and the training minutes are what is left.
"""

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigError
from engine.training.pieces import MANIFEST, Manifest

CALL_BYTES = 64 << 20  # the working tree and everything carried, one call
CARRY_PATHS = 8
RETURN_FILE_BYTES = 16 << 20
RETURN_FILES = 8
RETURN_BYTES = 64 << 20  # all files of one call's $OUT together
RETURN_PIECE_BYTES = RETURN_FILE_BYTES - (64 << 10)
PIECES_PER_SEND = 4  # 4 pieces and the manifest stay under RETURN_BYTES
COMMAND_CHARS = 2000
MARGIN_BYTES = 1 << 20  # what the tree may gain between staging and the lease, and the manifest

LEASE_S = 900  # device time of a session, start included
COMMAND_LIMIT_S = 600
START_S = 120  # a fresh machine: "a minute or more" (README); not yet measured here
CALL_S = 12  # one call's own cost plus the session's turn before the next (must stay under the 30 s warm window)
TRANSFER_BYTES_S = 20e6  # assumed, both ways; no lease has measured it yet
UNPACK_S = 150  # join and verify ~0.6 GB, install the wheels, unpack the corpus, dequantize the GGUF and load it
SAFETY_S = 60  # left unplanned: a slow start or a slow call must not cost the checkpoint

STAGE_DIR = Path("runs/gpu-stage")  # here: the pieces; there: where a carried piece lands
DEVICE_WORK = "/tmp/blockfill-gpu"  # there: outside the tree, kept while the machine is warm
LEASE = "python3 -m engine.training.gpu_lease"
SITE_ENV = f"PYTHONPATH={DEVICE_WORK}/site:$PWD PYTHONUNBUFFERED=1"  # the wheels `unpack` installs, then the repo


@dataclass(frozen=True)
class Call:
    command: str
    carry: tuple[str, ...]
    seconds: int  # expected, start excluded
    timeout_s: int


def tree_bytes(root: Path) -> int:
    """Bytes of what every call sends whatever it carries: tracked files and untracked ones git does not ignore."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    paths = {root / name.decode() for name in listed if name}
    return sum(path.stat().st_size for path in paths if path.is_file())


def carry_budget(tree: int) -> int:
    """The largest piece one call can carry beside a tree of `tree` bytes."""
    budget = CALL_BYTES - tree - MARGIN_BYTES
    if budget <= 0:
        raise ConfigError(f"the working tree is {tree / 2**20:.1f} MiB: no room left in a call's 64 MiB")
    return budget


def _seconds(moved: int, work: float = 0) -> int:
    return round(CALL_S + moved / TRANSFER_BYTES_S + work)


def return_estimate(staged_checkpoint: int, shipped_adapter: int) -> int:
    """Bytes of the run directory that comes back: last.pt (fp32 adapter and two AdamW moments, 12 bytes a
    parameter) and the fp16 adapter (2 bytes a parameter), from the staged checkpoint or else the shipped adapter."""
    return staged_checkpoint * 7 // 6 if staged_checkpoint else shipped_adapter * 7


def plan_calls(
    manifest: Manifest,
    tree: int,
    return_bytes: int,
    minutes: float | None = None,
    settings: tuple[str, ...] = (),
) -> tuple[list[Call], float]:
    """The calls of a lease and its training minutes (`minutes`, or what the 15 minutes leave)."""
    budget = carry_budget(tree)
    biggest = max(piece.size for piece in manifest.pieces)
    if biggest > budget:
        raise ConfigError(
            f"a staged piece is {biggest / 2**20:.1f} MiB but a call has room for {budget / 2**20:.1f} MiB beside "
            f"the {tree / 2**20:.1f} MiB tree: stage again"
        )
    sends = max(1, math.ceil(math.ceil(return_bytes / RETURN_PIECE_BYTES) / PIECES_PER_SEND))
    back = min(return_bytes, PIECES_PER_SEND * RETURN_PIECE_BYTES)
    staging = [_seconds(tree + piece.size) for piece in manifest.pieces[:-1]]
    train_fixed = _seconds(tree + manifest.pieces[-1].size + back, UNPACK_S)
    send_s = _seconds(tree + back)
    if minutes is None:
        left = LEASE_S - SAFETY_S - START_S - sum(staging) - train_fixed - (sends - 1) * send_s
        minutes = math.floor(min(left, COMMAND_LIMIT_S - 30 - train_fixed) / 6) / 10
        if minutes < 1:
            raise ConfigError(
                f"the stage needs {len(staging) + sends} calls and leaves {left} s of a lease to train: stage less "
                "(no --resume-from, a smaller tree)"
            )
    sets = "".join(f" --set {setting}" for setting in settings)
    train = f"{LEASE} unpack && {SITE_ENV} {LEASE} train --minutes {minutes}{sets} && {LEASE} send 0"
    calls = []
    for index, piece in enumerate(manifest.pieces):
        carry = ([f"{STAGE_DIR}/{MANIFEST}"] if index == 0 else []) + [f"{STAGE_DIR}/{piece.name}"]
        last = index == len(manifest.pieces) - 1
        command = f"{LEASE} receive" + (f" && {train}" if last else "")
        seconds = train_fixed + round(60 * minutes) if last else staging[index]
        calls.append(Call(command, tuple(carry), seconds, min(COMMAND_LIMIT_S, 2 * seconds + 30)))
    calls += [Call(f"{LEASE} send {n}", (), send_s, 120) for n in range(1, sends)]
    for call in calls:
        assert len(call.command) <= COMMAND_CHARS and len(call.carry) <= CARRY_PATHS, call
    return calls, minutes


def describe(calls: list[Call], minutes: float) -> str:
    """The plan as a session reads it: one block a call, then the lease's total."""
    lines = []
    for number, call in enumerate(calls, 1):
        carry = ", ".join(f'"{path}"' for path in call.carry)
        lines += [
            f"call {number}/{len(calls)}: ~{call.seconds} s, timeout_s {call.timeout_s}, carry [{carry}]",
            f"  {call.command}",
        ]
    total = START_S + sum(call.seconds for call in calls)
    lines += [
        f"training {minutes} min; lease ~{total} s of {LEASE_S} (start ~{START_S} s, estimates: see lease_plan.py)",
        "each call within 30 s of the last (the machine keeps files only while warm); after each call that returns "
        "files: cp <files_at>/* runs/gpu-return/; after the last, give_back (idle warm time counts), then here: "
        "python -m engine.training.gpu_lease join",
    ]
    return "\n".join(lines)
