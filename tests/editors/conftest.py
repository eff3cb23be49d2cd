"""Shared by the real-editor tests (VS Code, Neovim): what to do when an editor, a tool or the default model is
missing, and the small function the default model must complete in both editors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.models.catalog import CATALOG, cache_root, is_installed


def on_ci() -> bool:
    """CI sets CI=true: there a missing editor is a broken install, not a reason to skip."""
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip locally (the editors are optional to install); fail on CI, where a skip would hide a broken setup."""
    if on_ci():
        pytest.fail(f"{reason} (CI=true: editor tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


# A small function with an empty body and its own check: what the default model must fill so the check passes
# (greedy decoding, so the same every run; `is_even` and `reverse` pass as well with `blockfill infill`).
FUNCTION_AND_CHECK = "def add(a, b):\n\n\nassert add(2, 3) == 5\n"


def default_model_missing() -> str | None:
    """Why the default model cannot run here (its pretrained base is fetched by setup.sh), or None."""
    base = CATALOG[CATALOG["blockfill-coder"].base]
    if not is_installed(base):
        return f"{base.name}, the default model's base, is not fetched (`blockfill models fetch blockfill-coder`)"
    return None


def default_command_env() -> dict[str, str]:
    """What an editor started by a test needs for its default command on the default model: this environment's
    scripts first on PATH (as in an activated venv: `blockfill` is found there), and the models where setup.sh
    fetched them (the tests give editors their own HOME and XDG folders, which would hide that cache)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {"PATH": path, "BLOCKFILL_CACHE": str(cache_root())}


def assert_check_passes(file: Path) -> None:
    """Run the saved file with Python: its assert passes only if the accepted body is right."""
    done = subprocess.run([sys.executable, str(file)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"the file's own check failed:\n{file.read_text()}\n{done.stderr}"
