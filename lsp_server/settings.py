"""The server's settings: the engine's `EngineConfig` plus the few knobs only a server has.

CLI `--set k=v`, LSP `initializationOptions` and `workspace/didChangeConfiguration` all come through
`apply_settings`. Keys may be snake_case (`max_steps`) or camelCase as editors write them (`maxSteps`); each bad
key is reported on its own and the good ones still apply, so one typo does not cost the user every setting.
"""

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import EngineConfig, with_overrides
from engine.errors import ConfigError

# Engine settings that change what is loaded: a change to one of them reloads the model.
RELOAD_KEYS = frozenset({"model", "device", "allow_download", "quantize", "prepack_weights", "threads"})


def _default_acceptance_log() -> str:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(state) / "blockfill" / "accepted.jsonl")


@dataclass(frozen=True)
class ServerSettings:
    debounce_ms: int = 150  # automatic triggers wait this long for the next keystroke; Invoked ones never wait
    languages: tuple[str, ...] = ("*",)  # LSP language ids to complete in; "*" means every language
    alternatives: int = 3  # items for an Invoked request (cycling), denoised together in one batch
    max_document_chars: int = 1_000_000  # larger documents are kept in sync but never completed (nor parsed)
    acceptance_log: str = field(default_factory=_default_acceptance_log)  # local JSON lines; "" keeps none

    def completes(self, language: str | None) -> bool:
        return "*" in self.languages or (language or "") in self.languages


@dataclass(frozen=True)
class Settings:
    engine: EngineConfig = EngineConfig()
    server: ServerSettings = ServerSettings()


_SERVER_FIELDS = {f.name: f for f in dataclasses.fields(ServerSettings)}
_KNOWN = sorted([*_SERVER_FIELDS, *(f.name for f in dataclasses.fields(EngineConfig))])


def snake_case(key: str) -> str:
    """`maxSteps` -> `max_steps`; snake_case keys pass through."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def _server_value(name: str, value: Any) -> Any:
    """A server setting's value checked against its field type (strings allowed, as from `--set`)."""
    kind = _SERVER_FIELDS[name].type
    if kind is int:
        if isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise ConfigError(f"setting {name!r} must be a non-negative integer, got {value!r}")
    if kind == tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, list | tuple) and all(isinstance(i, str) for i in items):
            return tuple(i.strip() for i in items if i.strip())
        raise ConfigError(f"setting {name!r} must be a list of language ids, got {value!r}")
    if isinstance(value, str):
        return value
    raise ConfigError(f"setting {name!r} must be a string, got {value!r}")


def apply_settings(current: Settings, overrides: Mapping[str, Any]) -> tuple[Settings, list[str]]:
    """`current` with every valid override applied, and one problem message per key that was not applied."""
    if not isinstance(overrides, Mapping):
        return current, [f"settings must be an object of key/value pairs, got {type(overrides).__name__}"]
    engine, server, problems = current.engine, current.server, []
    for raw_key, value in overrides.items():
        key = snake_case(str(raw_key))
        if key not in _KNOWN:
            problems.append(f"unknown setting {raw_key!r}; known: {', '.join(_KNOWN)}")
            continue
        try:
            if key in _SERVER_FIELDS:
                server = dataclasses.replace(server, **{key: _server_value(key, value)})
            else:
                engine = with_overrides({key: value}, engine)
        except ConfigError as err:
            problems.append(f"{raw_key}: {err}")
    return Settings(engine, server), problems


def section(settings: Any) -> Any:
    """The blockfill part of a didChangeConfiguration payload: VS Code nests it under `blockfill`."""
    if isinstance(settings, Mapping) and isinstance(settings.get("blockfill"), Mapping):
        return settings["blockfill"]
    return settings
