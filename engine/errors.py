"""Typed errors the engine raises: callers (CLI, language server) turn them into messages, never stack traces."""

from collections.abc import Callable


class BlockfillError(Exception):
    """Base class: everything the engine raises on purpose derives from it."""


class ModelLoadError(BlockfillError):
    """A model spec that names nothing loadable: missing, partial or corrupt checkpoint, or an uncached hub id."""


class InputError(BlockfillError):
    """A request the engine cannot serve as given (a cursor past the end, a binary file, ...)."""


class Cancelled(BlockfillError):
    """A request was stopped between two forwards because the caller no longer wants the result."""


class ConfigError(BlockfillError):
    """An unknown setting or a value of the wrong type: reported, never silently ignored."""


def stop_if_asked(should_stop: Callable[[], bool] | None, what: str) -> None:
    """Raise Cancelled ("`what` cancelled") where the caller's `should_stop()` says it no longer wants the result;
    asked between forwards, the only points where a forward's work can be given up."""
    if should_stop is not None and should_stop():
        raise Cancelled(f"{what} cancelled")
