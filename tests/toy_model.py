"""A micro DiffusionGemma trained in seconds on a toy infilling task, with the project's real training code.

The task: in `value = <name>` / `<name> = value` the first `<name>` is the hole and the second, in the suffix, is
its only other occurrence, so the middle can be known from the suffix alone. A model that ignores the suffix scores
about 1 in len(WORDS).
"""

import random
from pathlib import Path

import torch
from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion

from engine.models.configs import ARCHITECTURES, build_config
from engine.prompt import SpecialTokens
from engine.training.examples import FimExample
from engine.training.tokenizer import save_tokenizer, train_tokenizer
from engine.training.train import collate_examples, fim_loss

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"]
CANVAS = 8


def toy_texts(word: str) -> tuple[str, str, str]:
    """(prefix, middle, suffix): the middle is `word`, which appears again only in the suffix."""
    return "value = ", word, f"\n{word} = value\n"  # at a line start the word tokenizes as in the middle


def train_toy_model(directory: Path, steps: int = 300, seed: int = 0) -> Path:
    """Train and save a checkpoint directory the engine loads like any other."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    corpus = ["".join(toy_texts(w)) for w in WORDS] * 20
    tokenizer = train_tokenizer(corpus, vocab_size=300)
    save_tokenizer(tokenizer, directory)
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    special = SpecialTokens.of(tokenizer)
    config = build_config(
        ARCHITECTURES["micro"], len(tokenizer), {"pad": special.pad, "eos": special.eos, "bos": special.bos}, CANVAS
    )
    config.blockfill_max_prefix_tokens, config.blockfill_max_suffix_tokens, config.blockfill_max_canvas = 64, 64, CANVAS
    model = DiffusionGemmaForBlockDiffusion(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    for _ in range(steps):
        examples = [FimExample(*map(encode, toy_texts(rng.choice(WORDS)))) for _ in range(16)]
        batch = collate_examples(examples, CANVAS, special, config.blockfill_fim_layout, "cpu")
        loss, _ = fim_loss(model, batch, generator, ar_loss_weight=0.5, self_conditioning_rate=0.5)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().save_pretrained(str(directory))
    return directory
