"""FIM layouts: positions, the canvas slot, and the chat-instruction fallback, on a real (toy) tokenizer."""

import pytest
from transformers import AutoTokenizer

from engine.errors import ModelLoadError
from engine.prompt import SpecialTokens, build_prompt, canvas_target, chat_frame, collate_prompts, encode_text


@pytest.fixture
def tokenizer(toy_checkpoint):
    return AutoTokenizer.from_pretrained(str(toy_checkpoint))


def test_suffix_sits_at_positions_after_the_canvas(tokenizer):
    special = SpecialTokens.of(tokenizer)
    prompt = build_prompt([10, 11, 12], [20, 21], 8, "suffix_after_canvas", special)
    assert prompt.input_ids == [special.bos, 10, 11, 12, special.fim_suffix, 20, 21]
    assert prompt.position_ids == [0, 1, 2, 3, 12, 13, 14]
    assert prompt.canvas_start == 4


def test_fim_text_is_psm_with_contiguous_positions(tokenizer):
    special = SpecialTokens.of(tokenizer)
    prompt = build_prompt([10], [20], 8, "fim_text", special)
    assert prompt.input_ids == [special.bos, special.fim_prefix, 10, special.fim_suffix, 20, special.fim_middle]
    assert prompt.position_ids == list(range(6)) and prompt.canvas_start == 6


def test_chat_checkpoint_without_fim_tokens_gets_an_instruction(tokenizer):
    tokenizer.chat_template = "{% for m in messages %}<user>{{ m['content'] }}</user>{% endfor %}<model>"
    special = SpecialTokens.of(tokenizer)
    special = SpecialTokens(special.pad, special.eos, special.bos, None, None, None, chat_frame(tokenizer))
    prefix = tokenizer("value = ", add_special_tokens=False)["input_ids"]
    suffix = tokenizer("\ngolf = value\n", add_special_tokens=False)["input_ids"]
    prompt = build_prompt(prefix, suffix, 8, "fim_text", special)
    text = tokenizer.decode(prompt.input_ids)  # the template brings its own BOS, if any
    assert text.startswith("<user>Fill in the code at <HOLE>.")
    assert "value = <HOLE>\ngolf = value\n</user><model>" in text


def test_no_fim_tokens_and_no_chat_template_is_a_clear_error(tokenizer):
    special = SpecialTokens.of(tokenizer)
    bare = SpecialTokens(special.pad, special.eos, special.bos, None, None, None)
    with pytest.raises(ModelLoadError, match="FIM tokens or a chat template"):
        build_prompt([1], [2], 4, "fim_text", bare)


def test_canvas_target_ends_with_eos_then_padding(tokenizer):
    special = SpecialTokens.of(tokenizer)
    assert canvas_target([7, 8], 5, special) == [7, 8, special.eos, special.pad, special.pad]
    with pytest.raises(ValueError, match="does not fit"):
        canvas_target([7] * 5, 5, special)


def test_collate_left_pads_and_masks(tokenizer):
    special = SpecialTokens.of(tokenizer)
    short = build_prompt([10], [], 4, "suffix_after_canvas", special)
    long = build_prompt([10, 11, 12], [20], 4, "suffix_after_canvas", special)
    batch = collate_prompts([short, long], 4, special.pad)
    assert batch.attention_mask.tolist() == [[False, False, False, True, True, True], [True] * 6]
    assert batch.canvas_position_ids.tolist() == [[2, 3, 4, 5], [4, 5, 6, 7]]


def test_text_that_spells_a_special_token_is_encoded_as_text(toy_checkpoint):
    """A hub tokenizer reads the text of its special tokens as those tokens (blockfill-tiny's own config splits
    them; this one is loaded as a hub tokenizer would be): file text must never become a FIM marker or an EOS."""
    tokenizer = AutoTokenizer.from_pretrained(str(toy_checkpoint), split_special_tokens=False)
    special = SpecialTokens.of(tokenizer)
    text = "x = '<fim_suffix>'  # " + tokenizer.eos_token
    assert special.fim_suffix in tokenizer(text, add_special_tokens=False)["input_ids"]  # what the default does
    ids = encode_text(tokenizer, text)
    assert {special.fim_suffix, special.eos}.isdisjoint(ids) and tokenizer.decode(ids) == text
