"""Any causal LM runs in the causal family, not only Qwen2: the same-size Gemma 4 baseline (sliding-window
layers) loads, batches and cancels through engine.coder's loop. A micro model with random weights, saved as a
real checkpoint directory with the embedded tokenizer, is enough for the plumbing; tests/test_coder.py checks
the middles against `generate()` and trains a model that must fill from the suffix.
"""

import pytest
import torch
from transformers import AutoTokenizer, Gemma4ForCausalLM

from engine.config import EngineConfig
from engine.errors import Cancelled
from engine.infill import Engine, InfillRequest
from engine.models.configs import ARCHITECTURES
from engine.models.loading import EMBEDDED_DIR, load_model
from engine.training.ar_fim import build_ar_config


@pytest.fixture(scope="module")
def causal_checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("causal")
    tokenizer = AutoTokenizer.from_pretrained(str(EMBEDDED_DIR))
    torch.manual_seed(0)
    config = build_ar_config(ARCHITECTURES["micro"], len(tokenizer), {"pad": 0, "eos": 1, "bos": 2})
    config.blockfill_max_canvas = 16
    Gemma4ForCausalLM(config).save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def test_causal_checkpoint_loads_as_the_causal_family(causal_checkpoint):
    loaded = load_model(str(causal_checkpoint), device="cpu")
    assert (loaded.family, loaded.layout, loaded.limits.max_canvas) == ("causal", "fim_text", 16)


def test_batched_rows_match_single_rows(causal_checkpoint):
    engine = Engine(EngineConfig(model=str(causal_checkpoint), device="cpu", drop_syntax_errors=False))
    assert not engine.drafter.can_share_a_cache  # sliding-window layers: the plain continuation decodes after
    requests = [
        InfillRequest("x = ", "\n", "python", canvas_tokens=8, force=True),
        InfillRequest("def f(items):\n    for item in items:\n        ", "\n    return 0\n", "python", 8, True),
    ]
    batched = [c.raw_text for c in engine.complete(requests)]
    single = [engine.complete([r])[0].raw_text for r in requests]
    assert batched == single


def test_cancel_stops_generation(causal_checkpoint):
    engine = Engine(EngineConfig(model=str(causal_checkpoint), device="cpu"))
    with pytest.raises(Cancelled):
        engine.complete([InfillRequest("x = ", "\n", "python", canvas_tokens=8, force=True)], should_stop=lambda: True)
