"""The Neovim plugin (editors/nvim) in real Neovim, against the real `blockfill serve` on the embedded model.

Nothing is mocked. Four drivers:
- tests/editors/nvim/test_units.lua: pure-Lua checks of accept splitting, position encodings and options;
- tests/editors/nvim/test_plugin.lua: headless Neovim typing in Insert mode (keys fed through Neovim's own input
  loop, mappings and autocommands included), on 0.11.4 and on 0.12-dev (there with UTF-16 positions and the
  native `vim.lsp.inline_completion` path as well);
- a tmux screen test: what a person sees in a terminal (ghost text on screen, <Tab> accepts, :w saves);
- tests/editors/nvim/test_default_model.lua: `setup({})` on the default model (blockfill-coder, whose base
  setup.sh fetches): the body it proposes for a small function, accepted and saved, makes the file's assert pass.
The two headless runs start together in the background (each loads its own server, which takes seconds) and
overlap with the tmux test, so the suite stays well under a minute on a busy 2-core machine.
Install Neovim with `bash editors/nvim/ci/install.sh`; without it the tests skip (fail when CI=true).
Failure artefacts (output, logs, screens) go to test-artifacts/nvim/; BLOCKFILL_UPDATE_SCREENSHOTS=1 refreshes
docs/screenshots/nvim-ghost-block.txt (an ANSI capture: `cat` it in a terminal).
"""

import html
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.editors.conftest import (
    FUNCTION_AND_CHECK,
    assert_check_passes,
    default_command_env,
    default_model_missing,
    skip_or_fail,
)

ROOT = Path(__file__).resolve().parents[2]
DRIVERS = Path(__file__).resolve().parent / "nvim"
FIXTURE = DRIVERS / "shapes.py.txt"  # .txt: a Python file with an empty function body does not parse
ARTIFACTS = ROOT / "test-artifacts" / "nvim"
SCREENSHOT = ROOT / "docs" / "screenshots" / "nvim-ghost-block.txt"  # and .svg beside it
INSTALL = "bash editors/nvim/ci/install.sh"
NVIM = {version: ROOT / ".editors" / f"nvim-{version}" / "bin" / "nvim" for version in ("0.11", "0.12")}
BLOCKFILL = Path(sys.executable).parent / "blockfill"
EMBEDDED = ROOT / "engine" / "models" / "blockfill-tiny" / "model.safetensors"  # (importing the engine costs seconds)
RUN_TIMEOUT_S = 300  # a whole headless run; the happy path takes ~25 s, a busy machine much more
READY_TIMEOUT_S = 150  # server start and model load in the tmux test
GHOST_TIMEOUT_S = 30
BLOCK_SPOT_ROWS = (14, 5, 9)  # test_plugin.lua's SPOTS[1], [5] and [6]: empty bodies after a line that opens a block

# Cases each headless run must report as passed: a run that lost cases must not pass quietly.
HEADLESS = {"0.11": ({}, 16), "0.12": ({"BLOCKFILL_NATIVE": "1", "BLOCKFILL_ENCODING": "utf-16"}, 19)}


def _missing(version: str) -> str | None:
    """Why Neovim `version` cannot be tested here, or None."""
    if not NVIM[version].exists():
        return f"Neovim {version} is not installed in .editors/nvim-{version} (run `{INSTALL}`)"
    if not BLOCKFILL.exists():
        return f"{BLOCKFILL} is missing (run `bash setup.sh`)"
    if not EMBEDDED.exists():
        return "the embedded model is not in engine/models/blockfill-tiny"
    return None


def _env(work: Path) -> dict[str, str]:
    """Neovim kept out of $HOME (swap, shada, logs in `work`), pointed at this checkout and its server."""
    env = dict(os.environ)
    for name in ("CONFIG", "DATA", "STATE", "CACHE"):
        env[f"XDG_{name}_HOME"] = str(work / "xdg" / name.lower())
    env.update(
        BLOCKFILL_REPO=str(ROOT),
        BLOCKFILL_CMD=str(BLOCKFILL),
        BLOCKFILL_WORK=str(work),
        BLOCKFILL_ARTIFACTS=str(work),
        NVIM_LOG_FILE=str(work / "nvim.log"),
    )
    return env


def _keep_artifacts(work: Path, name: str) -> Path:
    """Copy a failed run's folder (output, buffers, Neovim and LSP logs) to test-artifacts/nvim/NAME."""
    target = ARTIFACTS / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(work, target, ignore=shutil.ignore_patterns("*.sock", "cache"), dirs_exist_ok=True)
    return target


# An error while loading the script would leave headless Neovim waiting until the timeout: quit at once.
_LOAD = "lua local ok, e = pcall(dofile, '{script}') if not ok then print('FAIL load: ' .. e) vim.cmd('cquit 2') end"


@dataclass
class Run:
    version: str
    work: Path
    process: subprocess.Popen
    output: Path


def _start_headless(version: str, work: Path, script: str, extra: dict[str, str]) -> Run:
    """Headless Neovim running the driver `script` in the background (environment: `_env` plus `extra`)."""
    work.mkdir(parents=True, exist_ok=True)
    output = work / "output.txt"
    script = DRIVERS / script
    command = ["timeout", "-k", "5", str(RUN_TIMEOUT_S), str(NVIM[version]), "--headless", "--clean", "-n"]
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "-c", _LOAD.format(script=script)],
            cwd=ROOT,
            env={**_env(work), **extra},
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Run(version, work, process, output)


@pytest.fixture(scope="module")
def headless_runs(tmp_path_factory) -> Iterator[dict[str, Run | str]]:
    """Both headless runs, started at once in the background; a string says why a version cannot run."""
    runs: dict[str, Run | str] = {}
    for version, (extra, _) in HEADLESS.items():
        if reason := _missing(version):
            runs[version] = reason
        else:
            work = tmp_path_factory.mktemp(f"nvim-{version}")
            runs[version] = _start_headless(version, work, "test_plugin.lua", extra)
    yield runs
    for run in runs.values():
        if isinstance(run, Run) and run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGKILL)
            run.process.wait()


def test_lua_units() -> None:
    """accept.lua splitting, position.lua encodings and config.lua validation, without a server."""
    version = "0.11" if NVIM["0.11"].exists() else "0.12"
    if not NVIM[version].exists():
        skip_or_fail(f"Neovim is not installed in .editors/ (run `{INSTALL}`)")
    script = DRIVERS / "test_units.lua"
    result = subprocess.run(
        ["timeout", "-k", "5", "60", str(NVIM[version]), "--headless", "--clean", "-n", "-l", str(script)],
        cwd=ROOT,
        env={**os.environ, "BLOCKFILL_REPO": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "RESULT: PASS" in result.stdout, result.stdout + result.stderr


_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def ansi_to_svg(capture: str, cell_w: float = 8.4, cell_h: float = 17.0) -> str:
    """A tmux `capture-pane -e` screen as SVG (24-bit colours, bold): an image for the README without new deps."""
    fg, bg, bold = "#e0e2ea", "#14161b", False
    rows = capture.rstrip("\n").split("\n")
    width = max(len(_SGR.sub("", row)) for row in rows)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width * cell_w:.0f}" height="{len(rows) * cell_h:.0f}" '
        'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="14">',
        f'<rect width="100%" height="100%" fill="{bg}"/>',
    ]
    for y, row in enumerate(rows):
        x, pos, spans = 0, 0, []
        for match in [*_SGR.finditer(row), None]:
            text = row[pos : match.start() if match else len(row)]
            if text:
                if bg != "#14161b":
                    spans.append(
                        f'<rect x="{x * cell_w:.1f}" y="{y * cell_h:.1f}" width="{len(text) * cell_w:.1f}" '
                        f'height="{cell_h}" fill="{bg}"/>'
                    )
                weight = ' font-weight="bold"' if bold else ""
                spans.append(
                    f'<text x="{x * cell_w:.1f}" y="{(y + 0.8) * cell_h:.1f}" fill="{fg}"{weight} '
                    f'xml:space="preserve">{html.escape(text)}</text>'
                )
                x += len(text)
            if match is None:
                break
            pos = match.end()
            codes = [int(c) for c in match.group(1).split(";") if c] or [0]
            while codes:
                code = codes.pop(0)
                if code == 0:
                    fg, bg, bold = "#e0e2ea", "#14161b", False
                elif code == 1:
                    bold = True
                elif code in (38, 48) and codes[:1] == [2] and len(codes) >= 4:
                    color = "#{:02x}{:02x}{:02x}".format(*codes[1:4])
                    fg, bg = (color, bg) if code == 38 else (fg, color)
                    codes = codes[4:]
        out.extend(spans)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _screen(tmux: list[str], escapes: bool = False) -> list[str]:
    args = [*tmux, "capture-pane", "-p", "-t", "nvim", *(["-e"] if escapes else [])]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.split("\n")


def _wait(what: str, condition, timeout: float, screen) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; screen:\n" + "\n".join(screen()))


def test_tui_ghost_block_on_screen_tab_accepts_and_saves(tmp_path: Path, headless_runs) -> None:
    """In a real terminal: a multi-line ghost block appears at an empty function body, <Tab> makes it real text,
    and :w saves exactly what the screen showed (the file's lines are the screen's rows before the accept)."""
    if reason := _missing("0.11"):
        skip_or_fail(reason)
    if not shutil.which("tmux"):
        skip_or_fail("tmux is not installed (apt-get install tmux)")
    fixture = FIXTURE.read_text().split("\n")
    target = tmp_path / "shapes.py"
    shutil.copy(FIXTURE, target)
    tmux = ["tmux", "-L", f"blockfill-nvim-{os.getpid()}", "-f", "/dev/null"]
    init = DRIVERS / "init_tui.lua"
    env = _env(tmp_path)
    environment = [f"-e{key}={env[key]}" for key in env if key.startswith(("XDG_", "BLOCKFILL_", "NVIM_LOG"))]
    # a 256-colour terminal, as most users have (tmux's default "screen" would draw the ghost without colour)
    nvim = ["env", "TERM=xterm-256color", str(NVIM["0.11"]), "--clean", "-n", "-u", str(init), target.name]
    session = ["new-session", "-d", "-s", "nvim", "-x", "120", "-y", "24", "-c", str(tmp_path)]
    subprocess.run([*tmux, *session, *environment, *nvim], check=True)
    ok = False
    try:
        screen = lambda: _screen(tmux)  # noqa: E731
        _wait("the server to load the model", (tmp_path / "ready").exists, READY_TIMEOUT_S, screen)
        # The spots of test_plugin.lua's block case, in its order: what the weak model writes where changes with
        # the model, so the first spot that gives a multi-line block is taken (and undone where none shows).
        shown, row = None, 0
        for row in BLOCK_SPOT_ROWS:  # the new line below line `row` is screen row `row` (no number column)
            subprocess.run([*tmux, "send-keys", "-t", "nvim", f":{row}", "Enter", "o"], check=True)

            def ghost_settled(row: int = row) -> list[str] | None:
                """The screen once a ghost block shows (text after the indentation, rows pushed down), held still."""
                first = _screen(tmux)
                if not first[row].strip() or first[row + 1] == fixture[row]:
                    return None
                time.sleep(0.3)
                return first if _screen(tmux) == first else None

            try:
                shown = _wait("a multi-line ghost block on screen", ghost_settled, GHOST_TIMEOUT_S / 3, screen)
                break
            except AssertionError:
                subprocess.run([*tmux, "send-keys", "-t", "nvim", "Escape", "u"], check=True)
                time.sleep(0.5)
        assert shown is not None, f"no multi-line ghost block at lines {BLOCK_SPOT_ROWS}; screen:\n" + "\n".join(
            screen()
        )
        colored = _screen(tmux, escapes=True)
        assert "\x1b[" in colored[row], "the ghost text is drawn in its own colour"
        capture = "\n".join(colored).rstrip() + "\n"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "tui-ghost-block.ansi.txt").write_text(capture)
        (ARTIFACTS / "tui-ghost-block.svg").write_text(ansi_to_svg(capture))
        if os.environ.get("BLOCKFILL_UPDATE_SCREENSHOTS") == "1":
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            SCREENSHOT.write_text(capture)
            SCREENSHOT.with_suffix(".svg").write_text(ansi_to_svg(capture))

        subprocess.run([*tmux, "send-keys", "-t", "nvim", "Tab"], check=True)
        time.sleep(0.3)
        subprocess.run([*tmux, "send-keys", "-t", "nvim", "Escape", ":w", "Enter"], check=True)
        saved = lambda: target.read_text() != FIXTURE.read_text() and target.read_text()  # noqa: E731
        text = _wait(":w to save the accepted block", saved, GHOST_TIMEOUT_S, screen)
        lines = [line.rstrip() for line in text.rstrip("\n").split("\n")]
        assert len(lines) > len(FIXTURE.read_text().rstrip("\n").split("\n")), "the block added lines"
        assert lines == [r.rstrip() for r in shown[: len(lines)]], (
            "the saved file is what the screen showed:\n" + "\n".join(shown) + "\n--- file:\n" + text
        )
        ok = True
    finally:
        if not ok:
            (tmp_path / "screen.txt").write_text("\n".join(_screen(tmux)))
            _keep_artifacts(tmp_path, "tui")
        subprocess.run([*tmux, "kill-server"], capture_output=True)


@pytest.mark.parametrize("version", list(HEADLESS))
def test_headless_plugin(version: str, headless_runs) -> None:
    """Every case of test_plugin.lua passes on this Neovim (see the output for which and how long)."""
    run = headless_runs[version]
    if isinstance(run, str):
        skip_or_fail(run)
    _, expected = HEADLESS[version]
    _finish(run, expected, f"headless-{version}")


def _finish(run: Run, expected: int, name: str) -> None:
    """Wait for a headless run; unless `expected` cases passed, fail with its output and keep its artefacts."""
    try:
        run.process.wait(timeout=RUN_TIMEOUT_S + 10)
    except subprocess.TimeoutExpired:
        os.killpg(run.process.pid, signal.SIGKILL)
        run.process.wait()
    output = run.output.read_text(errors="replace")
    passed = [line for line in output.splitlines() if line.startswith("ok ")]
    if run.process.returncode != 0 or "RESULT: PASS" not in output or len(passed) < expected:
        kept = _keep_artifacts(run.work, name)
        pytest.fail(
            f"Neovim {run.version}: exit {run.process.returncode}, {len(passed)}/{expected} cases passed "
            f"(artefacts in {kept}):\n{output}",
            pytrace=False,
        )


def test_default_settings_complete_a_function_so_that_its_check_passes(tmp_path: Path) -> None:
    """`setup({})` as a user writes it: the default command (`blockfill` on PATH, as in an activated venv) and
    the default model. The body the ghost text proposes is accepted with <Tab> and saved; the file's own assert
    passes. Last in the module, so the background runs above no longer share the CPU with the larger model."""
    if reason := _missing("0.11") or default_model_missing():
        skip_or_fail(reason)
    target = tmp_path / "add.py"
    target.write_text(FUNCTION_AND_CHECK)
    extra = {"BLOCKFILL_FILE": str(target), **default_command_env()}
    run = _start_headless("0.11", tmp_path, "test_default_model.lua", extra)
    _finish(run, 2, "default-model")
    assert_check_passes(target)
