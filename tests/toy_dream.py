"""A micro Dream-layout checkpoint trained in seconds on tests/toy_model.py's task (only the suffix names the
middle), with the engine's own masked-diffusion forward (engine.families.masked_diffusion) and prompt layout.

Training: the canvas (middle, end token, padding) with a random share t ~ U(0, 1) of its positions masked, and the
cross-entropy of the shifted logits at the masked positions: Dream's objective, on the loaded checkpoint, whose
weights are then written back under the public tensor names.
"""

import random
from pathlib import Path

import torch

from engine.families.masked_diffusion import MaskedDiffusion
from engine.models.loading import load_model
from engine.prompt import build_prompt, canvas_target, collate_prompts
from tests.diffusion_checkpoints import save_trained, write_checkpoint
from tests.toy_model import CANVAS, WORDS, toy_texts


def train_toy_dream(directory: Path, steps: int = 1000, seed: int = 0) -> Path:
    corpus = ["".join(toy_texts(w)) for w in WORDS] * 20
    write_checkpoint(directory, "dream", corpus)
    loaded = load_model(str(directory), device="cpu")
    model, special = loaded.model.train(), loaded.special
    family = MaskedDiffusion(model, loaded.mask_token_id, approximate_cache=False)
    encode = lambda text: loaded.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    torch.manual_seed(seed)
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        texts = [toy_texts(rng.choice(WORDS)) for _ in range(16)]
        prompts = [build_prompt(encode(p), encode(s), CANVAS, loaded.layout, special) for p, _, s in texts]
        batch = collate_prompts(prompts, CANVAS, special.pad)
        target = torch.tensor([canvas_target(encode(m), CANVAS, special) for _, m, _ in texts])  # [B, C]
        masked = torch.rand(target.shape) < torch.rand(target.shape[0], 1)  # [B, C] a share t ~ U(0, 1)
        noisy = torch.where(masked, loaded.mask_token_id, target)
        logits = family.canvas_logits(family.prefill(batch), noisy, batch.canvas_position_ids, None)  # [B, C, V]
        loss = torch.nn.functional.cross_entropy(logits[masked], target[masked])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return save_trained(directory, model, CANVAS)
