"""Weight-only int8 / int4 (engine/models/quantize.py): the codes, the experts' routing loop, one copy of each
shared weight, and the trained toy model still filling its holes through the engine when quantized."""

import pytest
import torch
from transformers import DiffusionGemmaForBlockDiffusion

from benchmarks.gpu.full_size import build_config as full_size_config
from engine.config import EngineConfig
from engine.errors import ConfigError
from engine.infill import Engine, InfillRequest
from engine.models.quantize import (
    QuantizedExperts,
    QuantizedLinear,
    dequantize_groups,
    quantize_groups,
    quantize_model,
    weight_bytes,
)
from tests.toy_model import CANVAS, WORDS, toy_texts


@pytest.mark.parametrize("bits", [8, 4])
def test_codes_round_trip_within_half_a_step_and_int4_packs_two_to_a_byte(bits):
    weight = torch.randn(3, 16, 192, generator=torch.Generator().manual_seed(0))  # [E, O, In]
    codes, scales = quantize_groups(weight, bits)
    assert codes.shape == (3, 16, 192 // 2 if bits == 4 else 192)
    assert scales.shape == (3, 16, 3, 1)  # one scale per 64 inputs
    error = (dequantize_groups(codes, scales, bits) - weight).reshape(3, 16, 3, 64).abs()
    assert (error <= scales / 2 + 1e-6).all()
    assert error.max() > 0  # it is lossy: the check above bounds a real error


def test_a_width_that_is_not_a_multiple_of_the_group_gets_smaller_groups():
    weight = torch.randn(4, 96)
    codes, scales = quantize_groups(weight, 4)
    assert scales.shape == (4, 3, 1)  # gcd(96, 64) = 32 inputs a scale
    assert torch.allclose(dequantize_groups(codes, scales, 4), weight, atol=scales.max().item())


def _small_model() -> DiffusionGemmaForBlockDiffusion:
    torch.manual_seed(0)
    return DiffusionGemmaForBlockDiffusion(full_size_config("small", 32)).eval()


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_experts_route_like_the_original(bits):
    experts = _small_model().model.decoder.layers[0].experts
    hidden = torch.randn(20, experts.hidden_dim)  # [T, H]
    weights, index = torch.rand(20, 2).softmax(-1), torch.randint(0, experts.num_experts, (20, 2))  # [T, K]
    original = experts(hidden, index, weights)
    quantized = QuantizedExperts(experts, bits)
    # Exactly the original's loop on the dequantized weights...
    for name, codes in (("gate_up_proj", quantized.gate_up_proj_codes), ("down_proj", quantized.down_proj_codes)):
        getattr(experts, name).data = dequantize_groups(codes, getattr(quantized, f"{name}_scales"), bits)
    assert torch.allclose(quantized(hidden, index, weights), experts(hidden, index, weights), atol=1e-6)
    # ...and close to the unquantized output, closer with more bits.
    relative = (quantized(hidden, index, weights) - original).norm() / original.norm()
    assert relative < (0.02 if bits == 8 else 0.2), relative


def test_encoder_and_decoder_share_one_quantized_copy():
    model = _small_model()
    before = weight_bytes(model)["float32"]
    quantize_model(model, "int4")
    encoder, decoder = model.model.encoder.language_model.layers[0], model.model.decoder.layers[0]
    assert encoder.experts is decoder.experts and isinstance(decoder.experts, QuantizedExperts)
    assert encoder.self_attn.q_proj is decoder.self_attn.q_proj
    assert isinstance(decoder.self_attn.q_proj, QuantizedLinear)
    assert type(decoder.router.proj) is torch.nn.Linear  # routers keep their dtype
    assert model.lm_head.weight is model.model.decoder.embed_tokens.weight  # the tied embedding stays tied
    after = weight_bytes(model)
    assert after["uint8"] < before / 6  # experts and linears at about half a byte where they were four


def test_unknown_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="quantize must be one of none, int8, int4, int8-dynamic"):
        quantize_model(_small_model(), "int3")


@pytest.mark.parametrize("kind", ["int8", "int4"])
def test_quantized_toy_model_still_fills_the_middle_from_the_suffix(toy_checkpoint, kind):
    engine = Engine(EngineConfig(model=str(toy_checkpoint), device="cpu", quantize=kind))
    assert isinstance(engine.loaded.model.model.decoder.layers[0].experts, QuantizedExperts)
    completions = engine.complete([InfillRequest(*toy_texts(w)[::2], canvas_tokens=CANVAS, force=True) for w in WORDS])
    got = [c.raw_text for c in completions]
    assert sum(text == word for text, word in zip(got, WORDS, strict=True)) >= len(WORDS) - 1, got
