import pytest

from engine.config import EngineConfig, parse_assignments, with_overrides
from engine.errors import ConfigError


def test_overrides_from_strings_are_typed():
    config = with_overrides(parse_assignments(["max_steps=8", "allow_download=true", "t_max=0.9", "device=cpu"]))
    assert (config.max_steps, config.allow_download, config.t_max, config.device) == (8, True, 0.9, "cpu")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"no_such_key": 1}, "unknown setting"),
        ({"max_steps": "many"}, "must be int"),
        ({"seed": True}, "must be int"),
        ({"allow_download": "perhaps"}, "must be bool"),
        ({"t_min": "cold"}, "must be float"),
        ({"model": 3}, "must be str"),
    ],
)
def test_bad_overrides_are_rejected(overrides, message):
    with pytest.raises(ConfigError, match=message):
        with_overrides(overrides)


def test_assignment_needs_an_equals_sign():
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments(["max_steps"])


def test_defaults_are_untouched():
    assert with_overrides({}) == EngineConfig()


def test_training_settings_use_the_same_checks():
    from engine.training.train import TrainConfig

    config = with_overrides({"steps": "50", "canvas_lengths": "16,32", "lr": "1e-3"}, TrainConfig())
    assert (config.steps, config.canvas_lengths, config.lr) == (50, [16, 32], 0.001)
    with pytest.raises(ConfigError, match="must be int"):
        with_overrides({"steps": "many"}, TrainConfig())
    with pytest.raises(ConfigError, match="must be int, got 'big'"):
        with_overrides({"canvas_lengths": "16,big"}, TrainConfig())
    with pytest.raises(ConfigError, match="unknown setting"):
        with_overrides({"stepz": "5"}, TrainConfig())
