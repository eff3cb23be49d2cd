"""settings.py and typing_cache.py without a server."""

import pytest

from engine.config import EngineConfig
from lsp_server.server import _same_model
from lsp_server.settings import ServerSettings, Settings, apply_settings, section
from lsp_server.typing_cache import TypingCache, typed_since


def test_camel_and_snake_case_keys_map_onto_engine_and_server_settings():
    settings, problems = apply_settings(
        Settings(), {"maxSteps": 4, "device": "cpu", "debounce_ms": "50", "languages": ["python", "go"]}
    )
    assert problems == []
    assert settings.engine == EngineConfig(max_steps=4, device="cpu")
    assert settings.server.debounce_ms == 50
    assert settings.server.languages == ("python", "go")
    assert settings.server.completes("go") and not settings.server.completes("markdown")


def test_each_bad_key_is_reported_and_the_good_ones_still_apply():
    settings, problems = apply_settings(Settings(), {"maxStep": 4, "max_steps": "many", "debounceMs": -1, "seed": 3})
    assert settings.engine.seed == 3
    assert settings.engine.max_steps == EngineConfig().max_steps
    assert settings.server.debounce_ms == ServerSettings().debounce_ms
    assert len(problems) == 3
    assert "unknown setting 'maxStep'" in problems[0] and "max_steps" in problems[0]


def test_settings_that_are_not_an_object_are_reported():
    assert apply_settings(Settings(), ["model"])[1]


def test_vs_code_nests_settings_under_its_section():
    assert section({"blockfill": {"maxSteps": 2}}) == {"maxSteps": 2}
    assert section({"maxSteps": 2}) == {"maxSteps": 2}


@pytest.mark.parametrize("change", [{"quantize": "int8-dynamic"}, {"prepackWeights": False}, {"threads": 2}])
def test_a_change_to_how_weights_are_held_reloads_the_model(change):
    """Prepacked or quantized layers replace the loaded ones in place: only a reload can change them back."""
    before = Settings().engine
    assert not _same_model(before, apply_settings(Settings(), change)[0].engine)
    assert _same_model(before, apply_settings(Settings(), {"candidates": 4})[0].engine)  # rebuilt over the same


def test_typed_since_requires_the_same_prefix_and_suffix():
    assert typed_since("abXYcd", "ab", "cd") == "XY"
    assert typed_since("abcd", "ab", "cd") == ""
    assert typed_since("aXcd", "ab", "cd") is None
    assert typed_since("abXYc", "ab", "cd") is None


def test_typing_through_a_completion_answers_its_rest():
    cache = TypingCache()
    cache.remember("u", "x = ", "\n", ["alpha", "alps"], alternatives=False)
    assert cache.lookup("u", "x = al\n", 6, alternatives=False) == ["pha", "ps"]
    assert cache.lookup("u", "x = alp\n", 7, alternatives=False) == ["ha", "s"]
    assert cache.lookup("u", "x = b\n", 5, alternatives=False) is None  # typed something else
    assert cache.lookup("u", "x = al\n# more\n", 6, alternatives=False) is None  # the suffix changed
    assert cache.lookup("u", "x = alpha\n", 9, alternatives=False) is None  # all typed: nothing left
    assert cache.lookup("u", "x = al\n", 6, alternatives=True) is None  # one item cannot serve a cycle
