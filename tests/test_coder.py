"""blockfill-coder's family: a causal LM decoded by engine.coder, left to right or drafting blocks with its adapter.

Correctness comes from a micro Qwen2 trained in the test on a toy task only the suffix determines
(tests/toy_coder.py); the adapter is trained with the project's own distillation loss. What must hold:
- left to right, the loop writes exactly what transformers' greedy `generate()` writes;
- the base fills the toy middle from the suffix, and an untrained model does not (so the check can fail);
- with an adapter, verified drafting writes token for token the base's middle (the quality floor), whatever the
  adapter's weights, and a trained adapter settles more than one token a step.
"""

import random

import pytest
import torch
from transformers import AutoTokenizer, Qwen2ForCausalLM
from transformers.cache_utils import DynamicCache

from engine.coder import (
    HIDDEN,
    Drafter,
    DraftSettings,
    MaskBlock,
    Middle,
    SharedCache,
    Span,
    decode_middles,
    draft_attention,
    end_rule,
    lookup_drafts,
)
from engine.config import EngineConfig
from engine.errors import Cancelled, ConfigError, ModelLoadError
from engine.infill import Engine, InfillRequest
from engine.models.gated_lora import ADAPTER_CONFIG, AdapterConfig, DraftingAdapter
from engine.models.loading import load_model
from engine.models.prepack import PrepackedLinear
from engine.prompt import SpecialTokens, build_prompt
from tests.toy_coder import BLOCK, draft_middle, toy_texts, train_toy_adapter, train_toy_base


@pytest.fixture(scope="module")
def toy_base(tmp_path_factory):
    return train_toy_base(tmp_path_factory.mktemp("toy-qwen2"))


@pytest.fixture(scope="module")
def toy_adapter(toy_base, tmp_path_factory):
    return train_toy_adapter(toy_base, tmp_path_factory.mktemp("toy-adapter"))


def _requests(count: int, seed: int = 1) -> tuple[list[InfillRequest], list[str]]:
    rng = random.Random(seed)
    texts = [toy_texts(rng) for _ in range(count)]
    return [InfillRequest(p, s, "python", canvas_tokens=12, force=True) for p, _, s in texts], [m for _, m, _ in texts]


def _engine(model: str, **settings) -> Engine:
    """The decoding loop alone: reranking (tests/test_rerank.py) would choose among more middles than it writes."""
    return Engine(EngineConfig(model=model, device="cpu", drop_syntax_errors=False, rerank=False, **settings))


def test_left_to_right_is_greedy_generate(toy_base):
    engine = _engine(str(toy_base), lookup_tokens=0, heal_tokens=False)  # healing constrains the first tokens
    assert engine.loaded.family == "causal"
    prefix, suffix = "value = ", "\ngolf echo alpha = value\n"
    completion = engine.complete([InfillRequest(prefix, suffix, "python", canvas_tokens=12, force=True)])[0]

    loaded, special = engine.loaded, engine.loaded.special
    encode = lambda text: loaded.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    # The cursor's line starts the middle (Engine._draft): here all of the prefix.
    prompt = build_prompt([], encode(suffix), 12, "fim_text", special).input_ids + encode(prefix)
    out = loaded.model.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False, eos_token_id=special.eos)
    new = out[0, len(prompt) :].tolist()
    end = new.index(special.eos) if special.eos in new else len(new)
    assert completion.raw_text == loaded.tokenizer.decode(new[:end], skip_special_tokens=True)
    assert completion.tokens == completion.steps == min(len(new), end + 1)  # one token a step


def test_the_base_fills_the_middle_from_the_suffix(toy_base):
    requests, middles = _requests(12)
    got = [c.raw_text.strip() for c in _engine(str(toy_base)).complete(requests)]
    assert sum(g == m for g, m in zip(got, middles, strict=True)) >= 10, list(zip(middles, got, strict=True))


def test_dynamic_int8_keeps_the_base_filling_the_middle_and_swaps_its_linear_layers(toy_base):
    engine = _engine(str(toy_base), quantize="int8-dynamic")
    modules = dict(engine.loaded.model.named_modules())
    assert isinstance(modules["model.layers.0.self_attn.q_proj"], torch.ao.nn.quantized.dynamic.Linear)
    # kept fp32 (engine.models.quantize), then prepacked as every fp32 Linear is on the CPU (engine.models.prepack)
    assert type(modules["model.layers.0.mlp.down_proj"]) is PrepackedLinear
    requests, middles = _requests(12)
    got = [c.raw_text.strip() for c in engine.complete(requests)]
    assert sum(g == m for g, m in zip(got, middles, strict=True)) >= 10, list(zip(middles, got, strict=True))
    with pytest.raises(ModelLoadError, match="DiffusionGemma"):
        load_model(str(toy_base), device="cpu", quantize="int4")


def test_an_untrained_base_fails_the_same_check(toy_base, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(str(toy_base))
    tokenizer.save_pretrained(str(tmp_path))
    torch.manual_seed(0)
    Qwen2ForCausalLM(Qwen2ForCausalLM.config_class.from_pretrained(str(toy_base))).save_pretrained(str(tmp_path))
    requests, middles = _requests(12)
    got = [c.raw_text.strip() for c in _engine(str(tmp_path)).complete(requests)]
    assert sum(g == m for g, m in zip(got, middles, strict=True)) <= 1


def test_trained_adapter_keeps_the_base_middle_and_drafts_ahead(toy_base, toy_adapter):
    requests, _ = _requests(12, seed=2)
    base = _engine(str(toy_base), lookup_tokens=0).complete(requests)  # one token a step
    coder = _engine(str(toy_adapter), block_size=-1)
    assert (coder.loaded.family, coder.draft_settings.block_size) == ("coder", BLOCK)
    drafted = coder.complete(requests)
    assert [c.raw_text for c in drafted] == [c.raw_text for c in base]
    base_rate = sum(c.tokens for c in base) / sum(c.steps for c in base)
    coder_rate = sum(c.tokens for c in drafted) / sum(c.steps for c in drafted)
    assert coder_rate >= 1.4 * base_rate, (coder_rate, base_rate)


def test_any_adapter_keeps_the_base_middle_when_verifying(toy_base, tmp_path):
    """The floor: random (non-zero) adapter weights and an eager threshold change speed, never the middle."""
    tokenizer = AutoTokenizer.from_pretrained(str(toy_base))
    special = SpecialTokens.of(tokenizer)
    lm = Qwen2ForCausalLM.from_pretrained(str(toy_base), dtype=torch.float32)
    adapter = DraftingAdapter(lm, AdapterConfig(str(toy_base), BLOCK, special.pad, rank=4, alpha=8.0))
    torch.manual_seed(3)
    with torch.no_grad():
        for parameter in adapter.trainable_parameters():
            parameter.normal_(0, 0.5)
    adapter.save(tmp_path)
    requests, _ = _requests(8, seed=3)
    base = [c.raw_text for c in _engine(str(toy_base)).complete(requests)]
    eager = _engine(str(tmp_path), block_size=-1, draft_threshold=0.0).complete(requests)
    assert [c.raw_text for c in eager] == base


def test_lookup_drafts_copy_what_followed_the_last_occurrence_of_the_last_three_tokens():
    reference = [1, 2, 3, 4, 5, 9, 1, 2, 3, 6, 7, 8]
    assert lookup_drafts(reference, [0, 1, 2, 3], limit=2) == [6, 7]  # the later occurrence
    assert lookup_drafts(reference, [5, 9, 1], limit=8) == [2, 3, 6, 7, 8]  # up to the reference's end
    assert lookup_drafts(reference, [2, 3, 5], limit=8) == []  # the n-gram is not there
    assert lookup_drafts(reference, [2, 3], limit=8) == []  # too short to match
    assert lookup_drafts(reference, [1, 2, 3], limit=0) == []
    assert lookup_drafts(reference, [7, 9], limit=2, ngram=1) == [1, 2]  # another n-gram size (lookup_policy)


def test_lookup_drafts_keep_the_greedy_middle_and_settle_several_tokens_a_step(toy_base):
    """Copied drafts are verified like the adapter's: the same middles as one token a step, in fewer forwards
    where the reference holds the middle (a reference of the middle itself: every draft is right)."""
    requests, _ = _requests(12, seed=4)
    base = _engine(str(toy_base), lookup_tokens=0).complete(requests)
    copied = _engine(str(toy_base), lookup_tokens=8).complete(requests)
    assert [c.raw_text for c in copied] == [c.raw_text for c in base]

    loaded = load_model(str(toy_base), device="cpu")
    drafter, settings = Drafter(loaded.model, None), DraftSettings(block_size=0, lookup_tokens=8)
    encode = lambda text: loaded.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prefix, suffix = "value = ", "\nbravo bravo bravo = value\n"
    prompt = build_prompt(encode(prefix), encode(suffix), 12, "fim_text", loaded.special).input_ids

    def decode(reference: list[int]):
        cache = DynamicCache(config=loaded.model.config)
        logits = drafter.prefill(prompt, cache)
        return draft_middle(drafter, cache, logits, settings, 12, lambda t: None, reference=reference, lead=prompt)

    alone = decode([])
    assert alone.steps == len(alone.tokens) - 1  # one token a forward, the last needing none
    assert len(alone.tokens) >= 6  # so that two forwards are a real saving
    again = decode([*prompt[-3:], *alone.tokens])
    assert again.tokens == alone.tokens and again.steps <= 2, (again.steps, len(alone.tokens))


def test_lookup_drafts_come_before_the_masks_and_the_masks_draft_where_the_reference_has_none(toy_adapter):
    """With both an adapter and lookup: a reference that holds the middle settles it in the fewest forwards, one
    that holds nothing leaves the masks to draft, and a misleading one costs forwards, never the middle."""
    loaded = load_model(str(toy_adapter), device="cpu")
    encode = lambda text: loaded.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt = build_prompt([], encode("\nbravo bravo bravo = value\n"), 12, "fim_text", loaded.special).input_ids
    prompt += encode("value = ")  # the cursor's line starts the middle, as the engine serves it

    def decode(block: int, lookup: int, reference: list[int]):
        drafter = Drafter(loaded.model, loaded.adapter)
        cache = DynamicCache(config=loaded.model.config)
        logits = drafter.prefill(prompt, cache)
        settings = DraftSettings(block_size=block, lookup_tokens=lookup)
        return draft_middle(drafter, cache, logits, settings, 12, lambda t: None, reference=reference, lead=prompt)

    alone = decode(0, 0, [])
    assert alone.steps == len(alone.tokens) - 1 and len(alone.tokens) >= 6
    masks = decode(BLOCK, 8, [])
    copied = decode(BLOCK, 8, [*prompt[-3:], *alone.tokens])
    misled = decode(BLOCK, 8, [*prompt[-3:], *alone.tokens[:1], *reversed(alone.tokens[1:])])
    assert masks.tokens == copied.tokens == misled.tokens == alone.tokens
    assert masks.steps < alone.steps, (masks.steps, alone.steps)  # the masks drafted
    assert copied.steps <= 2 < masks.steps, (copied.steps, masks.steps)  # the lookup drafts came first


def test_masks_on_the_prompts_last_forward_save_the_first_step_and_change_nothing_else(toy_adapter):
    """The prefill's last forward carries the masks too, so the first step already verifies drafts: the middle
    takes a step less, and the cache and the base's prediction are what a prefill without masks leaves."""
    loaded = load_model(str(toy_adapter), device="cpu")
    encode = lambda text: loaded.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt = build_prompt([], encode("\nbravo bravo bravo = value\n"), 12, "fim_text", loaded.special).input_ids
    prompt += encode("value = ")[:-1]  # as the engine serves it: the cursor's line, its last token taken back
    drafter, settings = Drafter(loaded.model, loaded.adapter), DraftSettings(block_size=BLOCK)

    def decode(block: int):
        cache = DynamicCache(config=loaded.model.config)
        prediction = drafter.prefill(prompt, cache, block=block)
        assert cache.get_seq_length() == len(prompt)  # the masks were not kept
        return prediction, draft_middle(drafter, cache, prediction, settings, 12, lambda t: None)

    (without, later), (with_masks, sooner) = decode(0), decode(BLOCK)
    assert (without.shape[0], with_masks.shape[0]) == (1, 1 + BLOCK)
    torch.testing.assert_close(with_masks[0], without[0])
    assert sooner.tokens == later.tokens and len(later.tokens) >= 6
    assert sooner.steps < later.steps, (sooner.steps, later.steps)


def test_fallback_blocks_draft_what_masks_behind_their_tokens_alone_would(toy_adapter):
    """Fallback block i reads the cache and pending[: i + 1] only, at the positions after them: its drafts are
    those of a step over pending[: i + 1] alone, whatever drafts follow; the first block and the base rows are as
    without fallbacks, and nothing of them stays in the cache."""
    loaded = load_model(str(toy_adapter), device="cpu")
    encode = lambda text: loaded.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt = build_prompt([], encode("\nbravo bravo bravo = value\n"), 12, "fim_text", loaded.special).input_ids
    drafter = Drafter(loaded.model, loaded.adapter)
    pending = encode("value = bravo")  # a first token and drafts after it
    assert len(pending) >= 3

    def step(tokens: list[int], size: int, blocks: int):
        """A step's logits as Middle.advance splits them: base rows, the first block's, the fallback blocks'."""
        cache = DynamicCache(config=loaded.model.config)
        drafter.prefill(prompt, cache)
        fallbacks = min(blocks, len(tokens) - 1) if size else 0
        blocks = (MaskBlock(len(tokens), BLOCK), *(MaskBlock(i + 1, size) for i in range(fallbacks)))
        span = Span(0, tokens, len(tokens), blocks)
        shared = SharedCache(cache)
        (logits,) = drafter.forward(shared, [span])
        shared.settle([span], [len(tokens)])
        assert cache.get_seq_length() == len(prompt) + len(tokens)
        n = len(tokens)
        return logits[:n], logits[n : n + BLOCK], logits[n + BLOCK :].reshape(fallbacks, size, logits.shape[-1])

    plain_rows, plain_masks, none = step(pending, 0, 2)
    rows, masks, fallbacks = step(pending, BLOCK, 2)
    assert none.shape[0] == 0 and fallbacks.shape[:2] == (2, BLOCK)
    assert step(pending[:1], BLOCK, 2)[2].shape[0] == 0  # one pending token: the first block is behind it
    for i in range(2):
        torch.testing.assert_close(fallbacks[i], step(pending[: i + 1], 0, 0)[1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(rows, plain_rows, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(masks, plain_masks, atol=1e-4, rtol=1e-4)


def test_fallback_masks_keep_the_middle_and_draft_after_a_failed_draft(toy_adapter):
    """A misleading reference makes the first step's lookup drafts fail at once; with a fallback block behind the
    first token the step after it verifies that block's drafts (every one: threshold 0) instead of settling one
    token, and the middle stays the base's."""
    loaded = load_model(str(toy_adapter), device="cpu")
    encode = lambda text: loaded.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt = build_prompt([], encode("\nbravo bravo bravo = value\n"), 12, "fim_text", loaded.special).input_ids
    prompt += encode("value = ")
    drafter = Drafter(loaded.model, loaded.adapter)
    steps_read: list[int] = []  # the pending tokens each step verified
    forward = drafter.forward
    drafter.forward = lambda shared, spans: steps_read.append(len(spans[0].tokens)) or forward(shared, spans)

    def decode(fallback_masks: int, reference: list[int]) -> tuple[list[int], list[int]]:
        cache = DynamicCache(config=loaded.model.config)
        logits = drafter.prefill(prompt, cache, block=BLOCK)
        steps_read.clear()  # the prefill's forward is not a step
        settings = DraftSettings(BLOCK, 0.0, lookup_tokens=8, fallback_masks=fallback_masks, fallback_blocks=1)
        result = draft_middle(drafter, cache, logits, settings, 12, lambda t: None, reference=reference, lead=prompt)
        return result.tokens, list(steps_read)

    alone, _ = decode(0, [])
    wrong = [t + 1 for t in alone[1:]]  # what the reference has after the middle's first token: all wrong
    misleading = [*prompt[-2:], alone[0], *wrong]
    (without, read_without), (with_fallback, read_with) = decode(0, misleading), decode(BLOCK, misleading)
    assert without == with_fallback == alone
    assert read_without[:1] == read_with[:1] == [1 + 8]  # the copied drafts (lookup_tokens), all refused
    assert (read_without[1], read_with[1]) == (1, 1 + BLOCK)


@pytest.mark.parametrize("block", [0, BLOCK])
def test_middles_decoded_side_by_side_are_each_the_middle_decoded_alone(toy_adapter, block):
    """Two middles in one cache whose prompts share a head, one forward a step for both (the second reading its
    prompt's own tail on the first): each writes what it writes decoded alone in its own cache, in as many steps,
    and the forwards number the longer middle's. Misleading lookup drafts make both middles refuse drafts, so
    the first middle's refused keys are hidden and read past."""
    loaded = load_model(str(toy_adapter), device="cpu")
    encode = lambda text: loaded.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    head = build_prompt([], encode("\nbravo bravo bravo = value\n"), 12, "fim_text", loaded.special).input_ids
    prompts = [head + encode("value = "), head + encode("echo = ")]
    drafter = Drafter(loaded.model, loaded.adapter)
    settings = DraftSettings(block, 0.3, lookup_tokens=8, fallback_masks=block, fallback_blocks=1)

    def middle(index: int, reference: list[int]) -> Middle:
        return Middle(settings, 12, lambda tokens: None, lambda: reference, prompts[index])

    def alone(index: int, reference: list[int]):
        cache = DynamicCache(config=loaded.model.config)
        decoding = middle(index, reference)
        decoding.begin(drafter.prefill(prompts[index], cache, block=block))
        return decode_middles(drafter, SharedCache(cache), [decoding])[0]

    truth = [alone(index, []) for index in range(2)]
    assert all(len(r.tokens) >= 6 for r in truth) and truth[0].tokens != truth[1].tokens
    # After the middle's first token, the reference holds every later token plus one: each copy fails at once.
    misleading = [
        [*prompt[-2:], r.tokens[0], *[t + 1 for t in r.tokens[1:]]] for prompt, r in zip(prompts, truth, strict=True)
    ]
    expected = [alone(index, misleading[index]) for index in range(2)]
    assert [r.tokens for r in expected] == [r.tokens for r in truth]

    cache = DynamicCache(config=loaded.model.config)
    first, second = middle(0, misleading[0]), middle(1, misleading[1])
    first.begin(drafter.prefill(prompts[0], cache, block=block))
    second.read_first(prompts[1][len(head) :])
    forwards, forward = [], drafter.forward
    drafter.forward = lambda shared, spans: forwards.append(len(spans)) or forward(shared, spans)
    shared = SharedCache(cache, [len(prompts[0]), len(head)])
    together = decode_middles(drafter, shared, [first, second])
    assert [r.tokens for r in together] == [r.tokens for r in expected]
    assert [r.steps for r in together] == [r.steps for r in expected]
    assert len(forwards) == max(expected[0].steps, 1 + expected[1].steps) and forwards[0] == 2
    assert HIDDEN in shared.owners


def test_draft_attention_keeps_pending_tokens_causal_and_off_the_masks():
    allowed = draft_attention(2, [Span(0, [5, 6], 2, (MaskBlock(2, 2),))], [None])
    assert allowed.tolist() == [
        [True, True, True, False, False, False],
        [True, True, True, True, False, False],
        [True, True, True, True, True, True],
        [True, True, True, True, True, True],
    ]
    fallback = draft_attention(1, [Span(0, [5, 6], 2, (MaskBlock(2, 1), MaskBlock(1, 2)))], [None])
    assert fallback.tolist() == [  # the fallback block reads pending[0] only
        [True, True, False, False, False, False],
        [True, True, True, False, False, False],
        [True, True, True, True, False, False],
        [True, True, False, False, True, True],
        [True, True, False, False, True, True],
    ]


def test_draft_attention_keeps_middles_apart():
    """Two middles in one forward: each reads the cached keys it owns and its own tokens and masks, never the
    other's."""
    reads = [torch.tensor([True, True, False]), torch.tensor([True, False, True])]
    spans = [Span(0, [5, 6], 2), Span(1, [7], 1, (MaskBlock(1, 1),))]
    assert draft_attention(3, spans, reads).tolist() == [
        [True, True, False, True, False, False, False],
        [True, True, False, True, True, False, False],
        [True, False, True, False, False, True, False],
        [True, False, True, False, False, True, True],  # the second middle's mask reads its token and itself
    ]


def test_a_shared_cache_cuts_refused_keys_at_its_end_and_hides_them_before_another_middles():
    cache, keys = DynamicCache(), torch.zeros(1, 1, 3, 2)  # [batch, heads, keys, dim]
    cache.update(keys, keys, 0)  # a prompt of 3 tokens; the first middle reads them all, the second 2
    shared = SharedCache(cache, [3, 2])
    spans = [Span(0, [1, 2, 3], 3), Span(1, [4, 5], 2)]
    more = torch.zeros(1, 1, 5, 2)
    cache.update(more, more, 0)  # a forward appended both spans
    shared.settle(spans, [1, 1])
    assert shared.owners == [0, HIDDEN, HIDDEN, 1] and cache.get_seq_length() == 3 + 4  # the last key was cut
    assert shared.lengths == [4, 3]
    assert shared.reads(0).tolist() == [True] * 3 + [True, False, False, False]
    assert shared.reads(1).tolist() == [True, True, False] + [False, False, False, True]
    alone = SharedCache(DynamicCache())
    assert alone.reads(0) is None  # one middle over its whole cache: the model's causal default


@pytest.mark.parametrize(
    ("mode", "line_before", "pieces", "expected"),
    [
        ("line", "x = ", ["1", "\n", "y"], 2),  # after the first line
        ("line", "", ["\n", "a", "\n"], 3),  # a blank first line is not the line
        ("line", "x = 1;", ["\n", "    y", "\n", "z"], 3),  # a complete line: the next one is the middle's
        ("line", "x = 1;", [" y", "\n", "z"], 2),  # but what the middle writes on the cursor's line ends it
        ("line", "x = 1;", ["1;\n", "    y", "\n"], 3),  # healed `1;` is the line's text, not the middle's
        ("block", "    ", ["a", "\n", "    b", "\n", "c", "\n"], 6),  # the dedent that leaves the block
        ("block", "    ", ["a", "\n", "    b", "\n"], None),
        ("block", "", ["x", "\n", "stop = 1", "\n"], 4),  # a line equal to the suffix's first
        ("line", "x = ", ["1", "<end>"], 1),  # an end token is dropped
    ],
)
def test_end_rule(mode, line_before, pieces, expected):
    healed = "1;" if pieces[0] == "1;\n" else ""
    assert _ends_at(pieces, mode, line_before, "stop = 1\nmore\n", healed=healed) == expected


@pytest.mark.parametrize(
    ("suffix", "past_dedents", "expected"),
    [
        ("    return x\n", False, 4),  # the branch's dedent ends the block
        ("    return x\n", True, 8),  # down to the suffix's indentation: `else:` and its body are written
        ("\n\ndef after():\n", True, 4),  # a top-level suffix is no floor
        ("", True, 4),
    ],
)
def test_end_rule_past_dedents(suffix, past_dedents, expected):
    pieces = ["        n //= i", "\n", "    else:", "\n", "        i += 1", "\n", "x = 1", "\n"]
    assert _ends_at(pieces, "block", "", suffix, past_dedents) == expected


def _ends_at(
    pieces: list[str], mode: str, line_before: str, suffix: str, past_dedents: bool = False, healed: str = ""
) -> int | None:
    """end_rule over a toy vocabulary of the pieces themselves (`<end>` is the end token)."""
    vocabulary = {piece: index for index, piece in enumerate(dict.fromkeys(pieces))}
    text_of = {index: piece for piece, index in vocabulary.items()}
    stops = frozenset({vocabulary["<end>"]}) if "<end>" in vocabulary else frozenset()
    ends_at = end_rule(text_of.__getitem__, stops, mode, line_before, suffix, past_dedents, healed)
    return ends_at([vocabulary[p] for p in pieces])


def test_drafting_stops_between_steps_when_asked(toy_base, toy_adapter):
    loaded = load_model(str(toy_adapter), device="cpu")
    drafter = Drafter(loaded.model, loaded.adapter)
    cache = DynamicCache(config=loaded.model.config)
    logits = drafter.prefill([loaded.special.bos, 5, 6, 7], cache)
    with pytest.raises(Cancelled):
        draft_middle(drafter, cache, logits, DraftSettings(BLOCK), 12, lambda tokens: None, should_stop=lambda: True)


def test_a_foreign_adapter_is_refused(toy_base, tmp_path):
    (tmp_path / ADAPTER_CONFIG).write_text('{"model_type": "sdar", "block_size": 4}')
    with pytest.raises(ModelLoadError, match="not a blockfill-coder adapter"):
        load_model(str(tmp_path), device="cpu")


def test_a_catalog_base_that_is_not_fetched_names_the_command(monkeypatch, tmp_path):
    monkeypatch.setenv("BLOCKFILL_CACHE", str(tmp_path))
    with pytest.raises(ModelLoadError, match="blockfill models fetch qwen2.5-coder-0.5b"):
        load_model("qwen2.5-coder-0.5b", device="cpu")
    with pytest.raises(ModelLoadError, match="blockfill models fetch qwen2.5-coder-0.5b"):
        load_model("blockfill-coder", device="cpu")


def test_line_start_holes_can_be_planned_as_one_line(toy_base):
    request = InfillRequest("def f(x):\n", "    return x\n", "python")
    assert _engine(str(toy_base)).plan(request)[0].mode == "block"
    context = _engine(str(toy_base), line_start_holes="line").plan(request)[0]
    assert (context.mode, context.inserts_lines) == ("line", True)
    with pytest.raises(ConfigError, match="line_start_holes"):
        _engine(str(toy_base), line_start_holes="sometimes")


def test_a_middle_that_outlasts_the_first_by_more_than_its_patience_is_given_up(toy_adapter):
    """`patience` (the engine's `line_plain_patience`): once the first middle is over, the others get that many
    more forwards; a middle not over by then comes back as None, one that is comes back as it would without it."""
    loaded = load_model(str(toy_adapter), device="cpu")
    encode = lambda text: loaded.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    head = build_prompt([], encode("\nbravo bravo bravo = value\n"), 12, "fim_text", loaded.special).input_ids
    prompts = [head + encode("value = "), head + encode("echo = ")]
    drafter = Drafter(loaded.model, None)
    settings = DraftSettings(0, lookup_tokens=0)

    def run(patience: int | None) -> tuple[list, int]:
        cache = DynamicCache(config=loaded.model.config)
        short, long = Middle(settings, 3, lambda tokens: None), Middle(settings, 9, lambda tokens: None)
        short.begin(drafter.prefill(prompts[0], cache))
        long.read_first(prompts[1][len(head) :])
        forwards, forward = [], drafter.forward
        drafter.forward = lambda shared, spans: forwards.append(1) or forward(shared, spans)
        shared = SharedCache(cache, [len(prompts[0]), len(head)])
        results = decode_middles(drafter, shared, [short, long], patience=patience)
        drafter.forward = forward
        return results, len(forwards)

    (short, long), forwards = run(None)
    assert (len(short.tokens), len(long.tokens)) == (3, 9)
    # The short middle is over after its 2nd forward (one token a forward, the first from the prefill).
    assert run(0) == ([short, None], 2)
    assert run(3) == ([short, None], 5)
    assert run(forwards - 2) == ([short, long], forwards)
