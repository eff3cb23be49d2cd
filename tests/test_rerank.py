"""engine.rerank: a causal model's candidate middles, scored by the likelihood of the file each one makes.

On the micro Qwen2 of tests/toy_coder.py (trained on the toy task as FIM and as plain text), what must hold:
- the score of middle + suffix over the prefix's cache equals the same sum from one forward over the whole file;
- the score puts the true middle first among all the task's middles, where only the suffix says which it is, and
  an untrained model's score does not (so the check can fail);
- an engine that reranks (the default) still fills the toy holes.
"""

import dataclasses
import random

import pytest
import torch
from transformers import AutoTokenizer, Qwen2ForCausalLM
from transformers.cache_utils import DynamicCache

from engine import coder, infill, threads
from engine.config import EngineConfig
from engine.errors import Cancelled
from engine.infill import Engine, InfillRequest
from engine.rerank import file_log_likelihoods, line_prefixes
from tests.toy_coder import WORDS, toy_texts, train_toy_base


@pytest.fixture(scope="module")
def toy_base(tmp_path_factory):
    return train_toy_base(tmp_path_factory.mktemp("toy-qwen2-rerank"))


def test_line_prefixes_cut_after_each_non_blank_line():
    assert line_prefixes("a\n\nb\nc") == ["a\n", "a\n\nb\n", "a\n\nb\nc"]
    assert line_prefixes("a\nb\n") == ["a\n", "a\nb\n"]
    assert line_prefixes("\n  x") == ["\n  x"]
    assert line_prefixes("") == [""]


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _scores(lm, tokenizer, prefix: str, middles: list[str], suffix: str) -> list[float]:
    """The toy prefix `value = ` is cached up to `value`, and ` = <middle><suffix>` is what each middle scores
    (as the engine keeps the cursor line's start with the middle, so no token is split at the cursor)."""
    cache = DynamicCache(config=lm.config)
    prefix_ids = _encode(tokenizer, prefix.split(" ")[0])
    with torch.inference_mode():
        next_logits = lm(input_ids=torch.tensor([prefix_ids]), past_key_values=cache).logits[0, -1]
    rest = prefix[len(prefix.split(" ")[0]) :]
    continuations = [_encode(tokenizer, rest + middle + suffix) for middle in middles]
    scores = file_log_likelihoods(lm, cache, next_logits, continuations)
    assert cache.get_seq_length() == len(prefix_ids)  # left as it came, for the next candidate
    return scores


def test_the_score_is_the_whole_files_log_likelihood(toy_base):
    lm = Qwen2ForCausalLM.from_pretrained(str(toy_base)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(toy_base))
    prefix, middle, suffix = toy_texts(random.Random(3))
    # Candidates that share token prefixes (the scorer forwards only what follows a shared prefix) and repeat.
    texts = [middle, "", middle.split(" ")[0], f"{middle} alpha", middle, f"{middle} alpha bravo"]
    got = _scores(lm, tokenizer, prefix, texts, suffix)

    for text, score in zip(texts, got, strict=True):
        start = len(_encode(tokenizer, "value"))
        ids = _encode(tokenizer, "value") + _encode(tokenizer, prefix[len("value") :] + text + suffix)
        with torch.inference_mode():
            log_probs = lm(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)  # [T, V]
        reference = sum(float(log_probs[t - 1, ids[t]]) for t in range(start, len(ids)))
        assert score == pytest.approx(reference, abs=1e-3)


def test_a_cancelled_scoring_leaves_the_cache_as_it_came(toy_base):
    """A newer keystroke stops the scorer between candidates; the plain file's cache is then still the file's."""
    lm = Qwen2ForCausalLM.from_pretrained(str(toy_base)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(toy_base))
    cache = DynamicCache(config=lm.config)
    with torch.inference_mode():
        next_logits = lm(input_ids=torch.tensor([_encode(tokenizer, "value")]), past_key_values=cache).logits[0, -1]
    past, asked = cache.get_seq_length(), []
    continuations = [_encode(tokenizer, f" = {word}") for word in WORDS[:3]]
    with pytest.raises(Cancelled):
        file_log_likelihoods(lm, cache, next_logits, continuations, lambda: asked.append(1) or len(asked) > 1)
    assert len(asked) == 2 and cache.get_seq_length() == past


def _true_middle_ranks_first(model_dir, untrained: bool = False) -> int:
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    lm = Qwen2ForCausalLM.from_pretrained(str(model_dir)).eval()
    if untrained:
        torch.manual_seed(0)
        lm = Qwen2ForCausalLM(lm.config).eval()
    rng, hits = random.Random(7), 0
    for _ in range(12):
        prefix, middle, suffix = toy_texts(rng)
        middles = [" ".join([word] * 3) for word in WORDS]
        scores = _scores(lm, tokenizer, prefix, middles, suffix)
        hits += middles[scores.index(max(scores))] == middle
    return hits


def test_the_score_reads_the_suffix(toy_base):
    assert _true_middle_ranks_first(toy_base) >= 11
    assert _true_middle_ranks_first(toy_base, untrained=True) <= 4


def test_a_reranking_engine_fills_the_toy_holes(toy_base, monkeypatch):
    engine = Engine(EngineConfig(model=str(toy_base), device="cpu", drop_syntax_errors=False))
    assert engine.config.rerank
    scored = []  # a spy on the scorer: the engine reranks only where a line precedes the cursor's
    monkeypatch.setattr(infill, "file_log_likelihoods", lambda *a: scored.append(a[3]) or file_log_likelihoods(*a))
    rng = random.Random(1)
    texts = [toy_texts(rng) for _ in range(12)]
    requests = [InfillRequest("\n" + p, s, "python", canvas_tokens=12, force=True) for p, _, s in texts]
    got = [c.text.strip() for c in engine.complete(requests)]
    assert sum(g == m for g, (_, m, _) in zip(got, texts, strict=True)) >= 10, got
    # Scored only where two drafts could still be shown (a lone one needs no score), and at least once here.
    assert 1 <= len(scored) <= len(requests) and all(len(continuations) >= 2 for continuations in scored)


def test_drafts_that_cannot_be_shown_are_not_scored(toy_base, monkeypatch):
    """Post-processing ranks by standing before score, so a draft of a worse standing than another needs no forward:
    here every draft but the first stands worse (a stand-in for "adds a syntax error"), so nothing is scored."""
    engine = Engine(EngineConfig(model=str(toy_base), device="cpu", drop_syntax_errors=False))
    scored, seen = [], []
    monkeypatch.setattr(infill, "file_log_likelihoods", lambda *a: scored.append(a[3]) or file_log_likelihoods(*a))
    monkeypatch.setattr(infill, "standing_in", lambda context: lambda c: (seen.append(c.text) or c.text != seen[0],))
    prefix, _, suffix = toy_texts(random.Random(3))
    engine.complete([InfillRequest("\n" + prefix, suffix, "python", canvas_tokens=12, force=True)])
    assert len(set(seen)) >= 2 and not scored


def test_keystrokes_reuse_both_caches_exactly(toy_base):
    """An editor's requests reuse the FIM prompt's cache and the plain file's: the same middles as from scratch."""
    config = EngineConfig(model=str(toy_base), device="cpu", drop_syntax_errors=False, typeahead=False)
    engine = Engine(config)
    fresh = Engine(config, engine.loaded)
    prefix, _, suffix = toy_texts(random.Random(5))
    for typed in ("", "g", "go"):
        request = InfillRequest("\n" + prefix + typed, suffix, "python", canvas_tokens=12, force=True)
        kept = engine.complete([request])[0]
        fresh.forget_previous()
        assert kept.text == fresh.complete([request])[0].text
        assert (kept.reused_prompt_tokens > 0) == bool(typed)
    assert engine._plain_cache is not None and engine._plain_cache.cache.get_seq_length() >= 1
    forwards = []
    engine.loaded.model.register_forward_pre_hook(lambda *_: forwards.append(1))
    again = engine.complete([request])[0]  # the same prompts again: their predictions are kept, nothing is read
    reading, forwards[:] = len(forwards), []
    fresh.forget_previous()
    assert again.text == fresh.complete([request])[0].text and reading < len(forwards)


def test_the_two_decodes_side_by_side_write_what_they_write_one_after_the_other(toy_base, monkeypatch):
    """`decode_side_by_side` (the default): the FIM middle and the plain continuation in one forward a step, in the
    FIM prompt's cache, write the same middles as one after the other each in its own cache, in fewer forwards."""
    config = EngineConfig(model=str(toy_base), device="cpu", drop_syntax_errors=False, typeahead=False)
    together = Engine(config)
    apart = Engine(dataclasses.replace(config, decode_side_by_side=False), together.loaded)
    middles, forwards = [], []
    decode_middles = infill.decode_middles
    monkeypatch.setattr(
        infill, "decode_middles", lambda *a: middles.extend(decode_middles(*a)) or middles[-len(a[2]) :]
    )
    together.loaded.model.register_forward_pre_hook(lambda *_: forwards.append(1))
    rng = random.Random(8)
    runs = {}
    for engine in (together, apart):
        middles[:], forwards[:] = [], []
        for prefix, _, suffix in [toy_texts(rng) for _ in range(4)]:
            for typed in ("", "g"):  # a cursor line of the prefix's own, and one more character typed on it
                engine.complete([InfillRequest("\n" + prefix + typed, suffix, "python", canvas_tokens=12, force=True)])
        runs[engine is together] = ([m.tokens for m in middles], len(forwards))
        rng = random.Random(8)
    (middles_together, forwards_together), (middles_apart, forwards_apart) = runs[True], runs[False]
    assert len(middles_together) == len(middles_apart) == 16
    assert middles_together == middles_apart
    assert forwards_together < forwards_apart, (forwards_together, forwards_apart)


def test_the_fim_prompt_goes_on_from_the_plain_files_cache(toy_base):
    """The plain file's prompt is the FIM prompt's own start (`<|fim_prefix|>` and the file up to the cursor's line),
    so a request reads that head once: the FIM prefill goes on from a copy of the head's cache, and writes the same
    middle as a FIM prompt read whole (no reranking)."""
    config = EngineConfig(model=str(toy_base), device="cpu", drop_syntax_errors=False, typeahead=False)
    engine = Engine(config)
    starts = []  # (prompt length, tokens already cached) of each prefill
    prefill = engine.drafter.prefill
    engine.drafter.prefill = lambda ids, cache, cached=0, *rest, **named: (
        starts.append((len(ids), cached)) or prefill(ids, cache, cached, *rest, **named)
    )
    prefix, _, suffix = toy_texts(random.Random(5))
    request = InfillRequest("\n" + prefix, suffix, "python", canvas_tokens=12, force=True)
    shown = engine.complete([request])[0]
    head, fim = engine._plain_cache.prompt.input_ids, engine._prompt_cache.prompt.input_ids
    assert fim[: len(head)] == head and head[-1] != fim[len(head)]
    assert (len(head), 0) in starts and (len(fim), len(head)) in starts
    whole = Engine(dataclasses.replace(config, rerank=False), engine.loaded).complete([request])[0]
    assert shown.raw_text == whole.raw_text


def _keystroke_engines(toy_base, seed: int) -> tuple[Engine, Engine, InfillRequest]:
    """An engine that keeps a keystroke's caches, a fresh one on the same model to compare with, and a toy request."""
    config = EngineConfig(model=str(toy_base), device="cpu", drop_syntax_errors=False, typeahead=False)
    engine = Engine(config)
    prefix, _, suffix = toy_texts(random.Random(seed))
    request = InfillRequest("\n" + prefix, suffix, "python", canvas_tokens=12, force=True)
    return engine, Engine(config, engine.loaded), request


def test_a_cancelled_prefill_keeps_what_it_read_for_the_next_keystroke(toy_base, monkeypatch):
    """A keystroke that supersedes a long prefill waits for one chunk of it, not all of it, and the next request
    goes on from the chunks already read: the same middle as from scratch."""
    monkeypatch.setattr(coder, "PREFILL_CHUNK", 4)
    engine, fresh, request = _keystroke_engines(toy_base, seed=7)
    asked = []
    with pytest.raises(Cancelled):
        engine.complete([request], should_stop=lambda: asked.append(1) or len(asked) > 2)
    # The FIM prompt starts from the file head's cache (the plain file's prompt begins it), then reads three chunks.
    read = len(engine._plain_cache.prompt.input_ids) + 3 * 4
    assert len(asked) == 3 and engine._prompt_cache.cache.get_seq_length() == read
    from_scratch = fresh.complete([request])[0]
    assert engine._prompt_cache.prompt.input_ids == fresh._prompt_cache.prompt.input_ids[:read]
    resumed = engine.complete([request])[0]
    assert resumed.reused_prompt_tokens == read and resumed.text == from_scratch.text


def test_a_keystroke_cancelled_while_decoding_side_by_side_leaves_caches_the_next_one_reuses(toy_base):
    """Cancelled between two decoding steps, the FIM prompt's cache holds both middles' keys (and hidden refused
    ones) after the prompt; the next keystroke cuts them off and reuses the prompt: the same text as from scratch."""
    engine, fresh, request = _keystroke_engines(toy_base, seed=9)
    steps = []
    decode_middles = infill.decode_middles

    def stopped_after_two_steps(*args):
        return decode_middles(*args[:3], lambda: steps.append(1) or len(steps) > 2)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(infill, "decode_middles", stopped_after_two_steps)
        with pytest.raises(Cancelled):
            engine.complete([request])
    prompt = engine._prompt_cache.prompt.input_ids
    assert engine._prompt_cache.cache.get_seq_length() > len(prompt)  # both middles' first steps are in it
    again = engine.complete([request])[0]
    assert again.reused_prompt_tokens == len(prompt) and again.text == fresh.complete([request])[0].text
    # The cancelled decode's keys were cut off, not left for the next decode to read past: the caches match.
    assert engine._prompt_cache.cache.get_seq_length() == fresh._prompt_cache.cache.get_seq_length()


def test_typing_the_suggestion_shows_its_rest_without_a_forward(toy_base):
    """`typeahead`: a keystroke that types the start of the shown suggestion gets the rest at once (not always what a
    fresh decode there shows: benchmarks/keystroke.py counts how often); typing something else, a changed suffix, or
    typeahead off decode again."""
    config = EngineConfig(model=str(toy_base), device="cpu", drop_syntax_errors=False)  # the toy is not Python
    engine = Engine(config)
    fresh = Engine(dataclasses.replace(config, typeahead=False), engine.loaded)
    forwards = []
    engine.loaded.model.register_forward_pre_hook(lambda *_: forwards.append(1))
    prefix, middle, suffix = toy_texts(random.Random(5))

    def typing(engine: Engine, typed: str, after: str = suffix) -> infill.Completion:
        forwards.clear()
        return engine.complete([InfillRequest("\n" + prefix + typed, after, "python", canvas_tokens=12, force=True)])[0]

    shown = typing(engine, "").text
    assert shown.strip() == middle and forwards
    for typed in (shown[:1], shown[:2]):
        kept = typing(engine, typed)
        assert (kept.text, kept.steps, kept.refined, forwards) == (shown[len(typed) :], 0, True, [])
    other = typing(engine, shown[:1] + "Q")
    assert forwards and not other.refined
    typing(engine, "")
    assert typing(engine, shown[:1], suffix + "\n").refined is False and forwards
    typing(fresh, "")
    assert typing(fresh, shown[:1]).refined is False and forwards


def test_wide_forwards_run_on_prompt_threads_and_thin_ones_on_threads(toy_base, monkeypatch):
    """engine.threads: on an idle machine the wide forwards (the prefills, the reranker's scores, a step that
    verifies many drafts) run on `prompt_threads`, the thin ones (a step of a token or a few) on `threads`; the
    same completions as on one thread."""
    monkeypatch.setattr(threads, "WIDE_FORWARD_TOKENS", 6)  # the toy's prompts are short
    monkeypatch.setattr(threads.OtherLoad, "cores", lambda self: 0.0)  # the machine otherwise idle, whatever runs
    # With lookup drafts a step reads from one token up to 9: both kinds.
    config = EngineConfig(
        model=str(toy_base), device="cpu", drop_syntax_errors=False, lookup_tokens=8, threads=1, prompt_threads=2
    )
    engine = Engine(config)
    forwards = []  # (tokens read, threads) of each forward

    def count(module, args, kwargs):
        tokens = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs["inputs_embeds"]
        forwards.append((tokens.shape[1], torch.get_num_threads()))

    engine.loaded.model.register_forward_pre_hook(count, with_kwargs=True)
    rng = random.Random(1)
    texts = [toy_texts(rng) for _ in range(12)]
    requests = [InfillRequest("\n" + p, s, "python", canvas_tokens=12, force=True) for p, _, s in texts]
    shown = [c.text for c in engine.complete(requests)]
    assert torch.get_num_threads() == 1
    assert {n for tokens, n in forwards if tokens >= 6} == {2} and {n for tokens, n in forwards if tokens < 6} == {1}
    assert any(6 <= tokens <= 9 for tokens, _ in forwards)  # steps among the wide forwards
    narrow = Engine(dataclasses.replace(config, prompt_threads=1), engine.loaded)
    assert [c.text for c in narrow.complete(requests)] == shown


def test_a_plain_continuation_given_up_in_line_mode_leaves_the_fim_middle_alone(toy_base, monkeypatch):
    """`line_plain_patience=0`: in line mode the plain continuation stops when the FIM middle is over; where it had
    not finished its line, it offers no cut, and the FIM middle is shown as without reranking. (The toy's FIM
    middles are cut to two tokens, so that the plain continuation is the longer one, as in the editor's case.)"""
    config = EngineConfig(model=str(toy_base), device="cpu", drop_syntax_errors=False, typeahead=False)
    impatient = Engine(dataclasses.replace(config, line_plain_patience=0))
    fim_only = Engine(dataclasses.replace(config, rerank=False), impatient.loaded)
    results = []
    decode_middles = infill.decode_middles

    def short_fim_middle(drafter, shared, middles, *rest):
        middles[0].max_tokens = 2
        results.append(decode_middles(drafter, shared, middles, *rest))
        return results[-1]

    monkeypatch.setattr(infill, "decode_middles", short_fim_middle)
    rng, given_up = random.Random(8), 0
    for _ in range(8):
        prefix, _, suffix = toy_texts(rng)
        request = InfillRequest("\n" + prefix + "g", suffix, "python", canvas_tokens=12, force=True)
        shown = impatient.complete([request])[0]
        assert shown.context.mode == "line"
        if results[-1][1] is None:
            given_up += 1
            assert shown.raw_text == fim_only.complete([request])[0].raw_text
    assert given_up
