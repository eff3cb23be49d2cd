"""engine.models.prepack: fp32 Linear layers prepacked for oneDNN compute what `nn.Linear` computes.

The swap may change speed only: each layer's output must equal `nn.Linear`'s for one row (a decoded token) and
for several (a prefill, a verified draft), and an engine over the toy base (tests/toy_coder.py) must write the
same middles with and without it, drafting adapter included.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.config import EngineConfig
from engine.infill import Engine
from engine.models.gated_lora import GatedLoRALinear
from engine.models.prepack import PrepackedLinear, prepack_linears
from tests.test_coder import _requests
from tests.toy_coder import train_toy_adapter, train_toy_base


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 1, 48), (1, 7, 48), (3, 5, 48), (2, 48), (1, 3, 48)])
def test_a_prepacked_layer_computes_what_linear_computes(bias, shape):
    torch.manual_seed(0)
    linear = nn.Linear(48, 80, bias=bias)
    x = torch.randn(*shape)
    with torch.inference_mode():
        assert torch.allclose(PrepackedLinear(linear)(x), F.linear(x, linear.weight, linear.bias), atol=1e-5)


def test_only_fp32_linear_layers_are_swapped_and_a_shared_one_stays_shared():
    shared = nn.Linear(16, 16)
    model = nn.ModuleDict(
        {"a": nn.Sequential(shared), "b": nn.Sequential(shared), "bf16": nn.Linear(16, 16).to(torch.bfloat16)}
    )
    assert prepack_linears(model) == 1
    assert isinstance(model["a"][0], PrepackedLinear) and model["a"][0] is model["b"][0]
    assert type(model["bf16"]) is nn.Linear
    assert prepack_linears(model) == 0  # already swapped


@pytest.fixture(scope="module")
def toy_base(tmp_path_factory):
    return train_toy_base(tmp_path_factory.mktemp("toy-qwen2"))


@pytest.mark.parametrize("drafting", [False, True])
def test_an_engine_writes_the_same_middles_prepacked_or_not(toy_base, tmp_path_factory, drafting):
    model = str(train_toy_adapter(toy_base, tmp_path_factory.mktemp("toy-adapter")) if drafting else toy_base)
    settings = {"model": model, "device": "cpu", "drop_syntax_errors": False, "block_size": -1 if drafting else 0}
    prepacked = Engine(EngineConfig(**settings))
    plain = Engine(EngineConfig(**settings, prepack_weights=False))
    layers = dict(prepacked.loaded.model.named_modules())
    q_proj = layers["model.layers.0.self_attn.q_proj"]
    assert isinstance(q_proj.base if drafting else q_proj, PrepackedLinear)
    assert isinstance(layers["lm_head"], PrepackedLinear)
    assert not any(isinstance(m, PrepackedLinear) for m in plain.loaded.model.modules())
    assert isinstance(q_proj, GatedLoRALinear) == drafting
    requests, middles = _requests(12, seed=4)
    got = prepacked.complete(requests)
    assert [c.raw_text for c in got] == [c.raw_text for c in plain.complete(requests)]
    assert sum(c.raw_text.strip() == m for c, m in zip(got, middles, strict=True)) >= 10
