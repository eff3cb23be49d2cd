"""A micro block-diffusion checkpoint (SDAR or Fast-dLLM v2 layout) trained in seconds on tests/toy_model.py's task
(only the suffix names the middle), with the engine's own prompt layout and block-causal mask
(engine.families.block_diffusion), read the way the family reads it at inference.

Training (the objective these models publish): the FIM prompt and its canvas target as one sequence, twice: a noisy
copy, with a random share t ~ U(0, 1) of the canvas masked, then the clean copy. A noisy block reads itself
bidirectionally and the clean blocks before it (the KV cache of committed blocks at inference); the clean copy is
block-causal (what a commit writes to the cache). The loss is the cross-entropy at the masked positions: SDAR
predicts a position in place; Fast-dLLM v2 one position earlier, a block's first position from the clean copy's
last token of the block before (the family's `carry`).
"""

import random
from pathlib import Path

import torch

from engine.families import attention_masks
from engine.families.block_diffusion import block_causal
from engine.models.loading import load_model
from engine.prompt import build_prompt, canvas_target
from tests.diffusion_checkpoints import save_trained, write_checkpoint
from tests.toy_model import CANVAS, WORDS, toy_texts


def _noisy_and_clean_mask(positions: torch.Tensor, valid: torch.Tensor, block_size: int) -> torch.Tensor:
    """[B, 2T, 2T] which keys each query of [noisy, clean] reads, for sequences at `positions` [B, T]."""
    reads = block_causal(positions, block_size)  # [B, T, T] own block and earlier ones
    same = reads & reads.mT  # [B, T, T] own block only
    top = torch.cat([same, reads & ~same], dim=-1)  # noisy queries: their noisy block, then earlier clean blocks
    bottom = torch.cat([torch.zeros_like(reads), reads], dim=-1)  # clean queries: block-causal over the clean copy
    return torch.cat([top, bottom], dim=1) & valid.repeat(1, 2)[:, None, :]  # padding is never read


def train_toy_block(directory: Path, layout: str = "sdar", steps: int = 400, seed: int = 0) -> Path:
    corpus = ["".join(toy_texts(w)) for w in WORDS] * 20
    write_checkpoint(directory, layout, corpus)
    loaded = load_model(str(directory), device="cpu")
    model, special, mask_id = loaded.model.train(), loaded.special, loaded.mask_token_id
    block_size, shift = loaded.diffusion.block_size, loaded.diffusion.shift
    encode = lambda text: loaded.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    torch.manual_seed(seed)
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        sequences, starts = [], []
        for prefix, middle, suffix in (toy_texts(rng.choice(WORDS)) for _ in range(16)):
            prompt = build_prompt(encode(prefix), encode(suffix), CANVAS, loaded.layout, special)
            sequences.append(prompt.input_ids + canvas_target(encode(middle), CANVAS, special))
            starts.append(prompt.canvas_start)
        width = max(map(len, sequences))
        clean = torch.tensor([s + [special.pad] * (width - len(s)) for s in sequences])  # [B, T]
        positions = torch.arange(width).expand_as(clean)  # [B, T] fim_text: positions are indices
        start = torch.tensor(starts)[:, None]  # [B, 1]
        canvas = (positions >= start) & (positions < start + CANVAS)  # [B, T]
        valid = positions < torch.tensor([len(s) for s in sequences])[:, None]  # [B, T]
        masked = canvas & (torch.rand(clean.shape) < torch.rand(len(sequences), 1))  # [B, T] a share t ~ U(0, 1)
        logits = model(
            input_ids=torch.cat([torch.where(masked, mask_id, clean), clean], dim=1),
            position_ids=torch.cat([positions, positions], dim=1),
            attention_mask=attention_masks(_noisy_and_clean_mask(positions, valid, block_size)),
        ).logits  # [B, 2T, V]
        noisy_logits, clean_logits = logits.split(width, dim=1)  # [B, T, V] each
        if shift:  # position p from p - 1: in its noisy block, or the clean copy's when p starts a block
            block_start = (positions % block_size == 0)[..., None]  # [B, T, 1]
            noisy_logits = torch.where(block_start, clean_logits.roll(1, dims=1), noisy_logits.roll(1, dims=1))
        loss = torch.nn.functional.cross_entropy(noisy_logits[masked], clean[masked])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return save_trained(directory, model, CANVAS)
