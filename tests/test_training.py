"""Training settings that are not the corpus: mixed precision."""

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
