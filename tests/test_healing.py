"""engine.healing: the prompt's last token taken back and written again by the model, as the tokenizer reads it."""

import random

import pytest
import torch
from transformers import AutoTokenizer, Qwen2ForCausalLM
from transformers.cache_utils import DynamicCache

from engine import infill
from engine.coder import Drafter, DraftSettings
from engine.config import EngineConfig
from engine.healing import Vocabulary, still_to_write, take_back, vocabulary_of
from engine.infill import Engine, InfillRequest
from engine.postprocess import postprocess
from tests.toy_coder import draft_middle, toy_texts, train_toy_base

TEXTS = ["", "a", ");", ");\n", ")", "   ", " return", "    ", "    \n"]  # "" stands for a special token


def test_the_tokens_a_healed_text_may_start_with():
    vocabulary = Vocabulary(TEXTS)
    assert sorted(vocabulary.text(t) for t in vocabulary.starts(");")) == [")", ");", ");\n"]
    assert sorted(vocabulary.text(t) for t in vocabulary.starts("    ")) == ["   ", "    ", "    \n"]
    assert vocabulary.starts("b") == ()


def test_taking_back_the_last_token():
    vocabulary = Vocabulary(TEXTS)
    assert take_back([1, 2], vocabulary) == ([1], ");")
    assert take_back([1, 0], vocabulary) == ([1, 0], "")  # a special token is never taken back
    assert take_back([], vocabulary) == ([], "")
    assert take_back([1, 2], Vocabulary(["", "a", "\ufffd"])) == ([1, 2], "")  # part of a character's bytes
    assert still_to_write("    ", [5], vocabulary) == " "  # `   ` written, one space to go
    assert still_to_write("    ", [5, 6], vocabulary) == ""


@pytest.fixture(scope="module")
def toy_base(tmp_path_factory):
    return train_toy_base(tmp_path_factory.mktemp("toy-qwen2-healing"))


def test_a_healed_continuation_is_tokenized_as_the_file_is(toy_base):
    """`value = ` ends in a lone ` ` token, which the toy file never has before a word (it reads ` alpha`): healed,
    the model writes ` ` again inside its first token, and the text it writes tokenizes as the tokens it chose."""
    tokenizer = AutoTokenizer.from_pretrained(str(toy_base))
    lm = Qwen2ForCausalLM.from_pretrained(str(toy_base), dtype=torch.float32).eval()
    vocabulary = vocabulary_of(tokenizer)
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    ids = encode("\nvalue = ")
    prompt, heal = take_back(ids, vocabulary)
    assert heal == " "
    cache = DynamicCache(config=lm.config)
    drafter = Drafter(lm, None)
    middle = draft_middle(
        drafter,
        cache,
        drafter.prefill(prompt, cache),
        DraftSettings(block_size=0),
        6,
        lambda tokens: None,
        heal=heal,
        vocabulary=vocabulary,
    ).tokens
    text = tokenizer.decode(middle)
    assert text.startswith(heal) and text[1:].split()[0] in {
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
    }
    assert encode("\nvalue =" + text) == prompt + middle


def test_the_engine_writes_the_healed_text_once(toy_base, monkeypatch):
    """The engine heals both decodes (the prefix ends in `value = `): the holes fill, and every draft it ranks
    starts after the cursor, not with the taken-back space again."""
    rng = random.Random(4)
    texts = [toy_texts(rng) for _ in range(8)]
    requests = [InfillRequest("\n" + p, s, "python", canvas_tokens=12, force=True) for p, _, s in texts]
    ranked = []  # every candidate post-processing ranks, the plain continuation's cuts among them
    monkeypatch.setattr(infill, "postprocess", lambda c, *a: ranked.extend(x.text for x in c) or postprocess(c, *a))
    config = EngineConfig(model=str(toy_base), device="cpu", drop_syntax_errors=False)
    shown = [c.text for c in Engine(config).complete(requests)]
    assert sum(text.strip() == m for text, (_, m, _) in zip(shown, texts, strict=True)) >= 6, shown
    assert ranked and not any(text.startswith(" ") for text in ranked), ranked
