"""The sampler's two guards against a weak model's noise (engine/denoise.py), on a tiny random DiffusionGemma."""

import dataclasses

import torch
from transformers import DiffusionGemmaForBlockDiffusion

from engine.denoise import DenoiseSettings, _accept_mask, _uniform_canvas, denoise
from engine.models.configs import ARCHITECTURES, build_config
from engine.prompt import SpecialTokens, build_prompt, collate_prompts

SPECIAL = SpecialTokens(pad=0, eos=1, bos=2, fim_prefix=3, fim_middle=4, fim_suffix=5)


def test_the_floor_accepts_at_least_that_many_positions_by_entropy_or_from_the_left():
    entropy = torch.tensor([[0.5, 0.01, 2.0, 0.3, 1.0]])
    assert _accept_mask(entropy, bound=0.1).tolist() == [[False, True, False, True, False]]
    assert _accept_mask(entropy, bound=0.1, at_least=3).tolist() == [[True, True, False, True, False]]
    # From the left: the three leftmost, plus what the bound accepts anywhere.
    assert _accept_mask(entropy, 0.1, 3, from_left=True).tolist() == [[True, True, True, True, False]]


def _random_model_and_batch(canvas: int):
    torch.manual_seed(0)
    config = build_config(ARCHITECTURES["micro"], 300, {"pad": 0, "eos": 1, "bos": 2}, canvas)
    model = DiffusionGemmaForBlockDiffusion(config).eval()
    prompt = build_prompt(list(range(10, 30)), list(range(40, 50)), canvas, "suffix_after_canvas", SPECIAL)
    return model, collate_prompts([prompt], canvas, SPECIAL.pad, "cpu")


def test_no_position_keeps_the_random_token_it_started_with_when_copying_noise_is_barred():
    model, batch = _random_model_and_batch(16)
    settings = DenoiseSettings(max_steps=1, accept_floor=True)
    start = _uniform_canvas([torch.Generator().manual_seed(7)], 16, 300, "cpu")[0]
    barred = denoise(model, batch, dataclasses.replace(settings, no_copy_noise=True), [7]).tokens[0]
    assert not (barred == start).any()
    # Without the guard this model copies most of its input (tied embeddings): the guard is what removes that.
    allowed = denoise(model, batch, settings, [7]).tokens[0]
    assert (allowed == start).sum() > 8
