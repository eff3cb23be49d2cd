"""Training settings that are not the corpus: mixed precision."""

import json

import pytest
import torch

from engine.errors import ConfigError
from engine.training.train import autocast_dtype


def test_precision_setting_picks_the_autocast_dtype():
    assert autocast_dtype("fp32", "cpu") is None
    assert autocast_dtype("bf16", "cpu") is torch.bfloat16
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert autocast_dtype("auto", "cpu") == (torch.bfloat16 if native else None)
    with pytest.raises(ConfigError, match="precision"):
        autocast_dtype("fp8", "cpu")


def test_a_resume_records_only_the_settings_it_changes(tmp_path):
    from engine.training.train import _record_phase

    path = tmp_path / "phases.json"
    _record_phase(path, 0, {"out_dir": "a", "steps": 900, "lr": 0.002})
    _record_phase(path, 900, {"out_dir": "b", "steps": 900, "lr": 0.002})  # nothing changed: no phase
    _record_phase(path, 900, {"out_dir": "b", "steps": 2000, "lr": 0.002})
    assert json.loads(path.read_text()) == [
        {"from_step": 0, "changed": {"steps": 900, "lr": 0.002}},
        {"from_step": 900, "changed": {"steps": 2000}},
    ]
