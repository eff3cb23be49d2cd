"""A micro Qwen2 causal LM and its drafting adapter, both trained in seconds on a toy infilling task with the
project's real code (engine.training.coder_train's loss for the adapter), saved as checkpoint directories laid out
as the engine loads them; and `draft_middle`, one middle decoded alone in its own cache, for the tests.

The task: in `value = <w> <w> <w>` / `<w> <w> <w> = value` the middle is a word, three times, that appears again
only in the suffix, so only a model that reads the suffix fills it (about 1 in len(WORDS) otherwise), and once the
first word is written the rest is certain: what a drafting adapter must learn to settle several tokens a step.
"""

import random
from collections import abc
from pathlib import Path

import torch
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM
from transformers.cache_utils import DynamicCache

from engine.coder import Drafter, DraftResult, DraftSettings, Middle, SharedCache, decode_middles
from engine.healing import Vocabulary
from engine.models.gated_lora import AdapterConfig, DraftingAdapter
from engine.prompt import SpecialTokens, build_prompt
from engine.training.coder_train import Sequence, distillation_loss
from engine.training.tokenizer import save_tokenizer, train_tokenizer

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
BLOCK = 4


def toy_texts(rng: random.Random) -> tuple[str, str, str]:
    """(prefix, middle, suffix) with a three-word middle that the suffix repeats."""
    middle = " ".join([rng.choice(WORDS)] * 3)
    return "value = ", middle, f"\n{middle} = value\n"


def _sequence(tokenizer, special: SpecialTokens, rng: random.Random, served: bool = False) -> Sequence:
    """A FIM row whose middle starts at the line's start, `value = ` and the words tokenized as one text (the engine
    serves the cursor's line after `<|fim_middle|>`, its last token healed), or unless `served` half the time with
    `value = ` before `<|fim_suffix|>`: a code LM's random-span FIM training has middles that start anywhere."""
    prefix, middle, suffix = toy_texts(rng)
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    if served or rng.random() < 0.5:
        prompt, middle_ids = build_prompt([], encode(suffix), 0, "fim_text", special).input_ids, encode(prefix + middle)
    else:
        prompt, middle_ids = (
            build_prompt(encode(prefix), encode(suffix), 0, "fim_text", special).input_ids,
            encode(middle),
        )
    # Served: the middle the adapter drafts starts after the cursor's line, less its healed last token.
    start = len(prompt) + (len(encode(prefix)) - 1 if served else 0)
    return Sequence(prompt + middle_ids + [special.eos], start)


def _plain_sequence(tokenizer, special: SpecialTokens, rng: random.Random) -> Sequence:
    """The toy text as a plain file, every token a target: a code LM reads files left to right as well as FIM. Half
    the time after `<|fim_prefix|>`: a real FIM row's prefix is a file's start cut anywhere, so the text after the
    marker reads as a file (the engine's reranker reads the file so, from the FIM prompt's own start), while every
    toy FIM row cuts its prefix at `value = `."""
    opener = [special.fim_prefix] if rng.random() < 0.5 else []
    ids = tokenizer("".join(toy_texts(rng)), add_special_tokens=False)["input_ids"]
    return Sequence(opener + ids + [special.eos], len(opener))


def train_toy_base(directory: Path, steps: int = 250, seed: int = 0) -> Path:
    """A two-layer Qwen2 trained left to right on the toy task, as FIM text (loss on the middle) and as plain text
    (loss everywhere, which engine.rerank's file likelihood reads), saved with its tokenizer."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    corpus = ["".join(toy_texts(rng)) for _ in range(400)]
    save_tokenizer(train_tokenizer(corpus, vocab_size=300), directory)
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    special = SpecialTokens.of(tokenizer)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=special.pad,
        eos_token_id=special.eos,
        bos_token_id=special.bos,
    )
    config.blockfill_max_canvas = 16
    model = Qwen2ForCausalLM(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        rows = [_sequence(tokenizer, special, rng) for _ in range(10)]
        rows += [_plain_sequence(tokenizer, special, rng) for _ in range(6)]
        width = max(len(r.ids) for r in rows)
        ids = torch.tensor([r.ids + [special.pad] * (width - len(r.ids)) for r in rows])
        labels = torch.full_like(ids, -100)
        for i, r in enumerate(rows):  # next-token loss from the middle (a plain row: its start) to its end
            labels[i, r.middle_start : len(r.ids)] = ids[i, r.middle_start : len(r.ids)]
        loss = model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().save_pretrained(str(directory))
    return directory


def train_toy_adapter(base_dir: Path, directory: Path, steps: int = 150, seed: int = 0) -> Path:
    """The drafting adapter of `base_dir`, trained with the project's distillation loss, saved to `directory`."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    special = SpecialTokens.of(tokenizer)
    lm = Qwen2ForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    adapter = DraftingAdapter(lm, AdapterConfig(str(base_dir), BLOCK, special.pad, rank=8, alpha=16.0))
    optimizer = torch.optim.AdamW(adapter.trainable_parameters(), lr=3e-3)
    for _ in range(steps):
        loss, _, _ = distillation_loss(lm, adapter, _sequence(tokenizer, special, rng, True), windows=4, rng=rng)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    adapter.save(directory)
    return directory


def draft_middle(
    drafter: Drafter,
    cache: DynamicCache,
    prediction: torch.Tensor,
    settings: DraftSettings,
    max_tokens: int,
    ends_at: abc.Callable[[list[int]], int | None],
    should_stop: abc.Callable[[], bool] | None = None,
    reference: abc.Sequence[int] = (),
    lead: abc.Sequence[int] = (),
    heal: str = "",
    vocabulary: Vocabulary | None = None,
) -> DraftResult:
    """One middle alone after a prefilled prompt in `cache` (`prediction`: `Drafter.prefill`'s), as `Middle`
    describes its arguments: engine.coder's loop as the engine runs it for a middle without a plain continuation."""
    middle = Middle(settings, max_tokens, ends_at, lambda: reference, lead, heal, vocabulary)
    middle.begin(prediction)
    return decode_middles(drafter, SharedCache(cache), [middle], should_stop)[0]
