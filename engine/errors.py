"""Typed errors the engine raises: callers (CLI, language server) turn them into messages, never stack traces."""


class BlockfillError(Exception):
    """Base class: everything the engine raises on purpose derives from it."""


class ModelLoadError(BlockfillError):
    """A model spec that names nothing loadable: missing, partial or corrupt checkpoint, or an uncached hub id."""


class InputError(BlockfillError):
    """A request the engine cannot serve as given (a cursor past the end, a binary file, ...)."""


class Cancelled(BlockfillError):
    """Denoising was stopped between two steps because the caller no longer wants the result."""


class ConfigError(BlockfillError):
    """An unknown setting or a value of the wrong type: reported, never silently ignored."""
