"""Shared by the real-editor tests (VS Code, Neovim): what happens when an editor or a tool is not installed."""

import os

import pytest


def on_ci() -> bool:
    """CI sets CI=true: there a missing editor is a broken install, not a reason to skip."""
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip locally (the editors are optional to install); fail on CI, where a skip would hide a broken setup."""
    if on_ci():
        pytest.fail(f"{reason} (CI=true: editor tests may not be skipped)", pytrace=False)
    pytest.skip(reason)
