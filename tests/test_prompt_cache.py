"""Keystroke after keystroke the engine reuses the previous prompt's encoder cache, without changing results."""

import pytest

from engine.config import EngineConfig
from engine.errors import Cancelled
from engine.families import diffusion_gemma
from engine.infill import Engine, InfillRequest

# Short: the toy model's tokenizer spends about a token a character, and its sliding window is 64 tokens.
PREFIX = "def f(a):\n    b = a\n    "
SUFFIX = "\n    return b\n"


def _request(typed: str) -> InfillRequest:
    return InfillRequest(PREFIX + typed, SUFFIX, "python", canvas_tokens=8)


def test_typing_reuses_the_prompt_cache_and_matches_a_fresh_engine(toy_checkpoint):
    config = EngineConfig(model=str(toy_checkpoint), device="cpu", refine_steps=0)
    typing, fresh = Engine(config), Engine(config)
    first = typing.complete([_request("")])[0]
    assert first.reused_prompt_tokens == 0
    for typed in ("r", "re", "ret"):
        kept = typing.complete([_request(typed)])[0]
        assert kept.reused_prompt_tokens >= first.context.prefix_tokens  # the whole old prefix came from cache
        again = fresh.complete([_request(typed)])[0]
        fresh.forget_previous()  # the reference never reuses
        assert (kept.raw_text, kept.steps) == (again.raw_text, again.steps)


def test_a_different_document_reuses_nothing_useful(toy_checkpoint):
    engine = Engine(EngineConfig(model=str(toy_checkpoint), device="cpu"))
    engine.complete([_request("")])
    other = engine.complete([InfillRequest("x = ", "\n", "python", canvas_tokens=8)])[0]
    assert other.reused_prompt_tokens <= 1  # at most the shared <bos>


def test_a_cancelled_encoder_prefill_keeps_what_it_read_for_the_next_keystroke(toy_checkpoint, monkeypatch):
    """DiffusionGemma's prompt is read in chunks too: a keystroke that supersedes a long prefill waits for one
    chunk of it, and the next request goes on from the chunks already read, with the result a fresh engine gives."""
    monkeypatch.setattr(diffusion_gemma, "PREFILL_CHUNK", 4)
    config = EngineConfig(model=str(toy_checkpoint), device="cpu", refine_steps=0)
    engine, fresh = Engine(config), Engine(config)
    request = _request("re")
    asked = []
    with pytest.raises(Cancelled):
        engine.complete([request], should_stop=lambda: asked.append(1) or len(asked) > 2)
    assert len(asked) == 3 and engine._prompt_cache.cache.get_seq_length() == 3 * 4
    from_scratch = fresh.complete([request])[0]
    assert engine._prompt_cache.prompt.input_ids == fresh._prompt_cache.prompt.input_ids[: 3 * 4]
    resumed = engine.complete([request])[0]
    assert resumed.reused_prompt_tokens == 3 * 4
    assert (resumed.raw_text, resumed.steps) == (from_scratch.raw_text, from_scratch.steps)


def test_a_batch_read_in_chunks_gives_what_one_forward_gives(toy_checkpoint, monkeypatch):
    """Rows of different lengths (left-padded) read chunk by chunk: the same completions as read in one forward."""
    requests = [_request("r"), _request("return b if b else a")]
    engine = Engine(EngineConfig(model=str(toy_checkpoint), device="cpu"))
    whole = engine.complete(requests)
    monkeypatch.setattr(diffusion_gemma, "PREFILL_CHUNK", 4)
    rows = []
    encode = diffusion_gemma.encode_prompts
    monkeypatch.setattr(
        diffusion_gemma, "encode_prompts", lambda m, b, *a: rows.append(b.attention_mask) or encode(m, b, *a)
    )
    chunked = Engine(engine.config, engine.loaded).complete(requests)
    assert len(rows) == 1 and not rows[0].all()  # one batch of both rows, one of them padded
    assert [(c.raw_text, c.steps) for c in chunked] == [(c.raw_text, c.steps) for c in whole]
