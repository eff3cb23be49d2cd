"""Choose among a causal model's candidate middles by how likely it finds the file each one makes.

A FIM middle decoded left to right never reads the suffix after the point it writes, and an instruction-tuned
code model infills worse than it continues a file (issue 12's anchor run: 56.0 % of single-line HumanEval holes
with FIM, 60.4 % from the prefix alone). So the causal family gathers candidates from both decodings (the FIM
middle and the plain continuation of the prefix, each cut at every line end, which also lets one line win over a
block where the hole was one line) and scores each by log P(middle + the suffix's first tokens | prefix), read as
the plain file left to right: a middle that makes the code after it likely is one that fits there. Measured in
benchmarks/RESULTS.md.
"""

import torch
from torch import nn
from transformers.cache_utils import DynamicCache


def line_prefixes(text: str) -> list[str]:
    """`text` cut after each line break that ends a non-blank line, and `text` itself: the lengths to score."""
    cuts, line_start = [], 0
    for end, char in enumerate(text):
        if char == "\n":
            if text[line_start:end].strip():
                cuts.append(end + 1)
            line_start = end + 1
    return [text[:cut] for cut in cuts] + ([text] if not cuts or cuts[-1] != len(text) else [])


@torch.inference_mode()
def file_log_likelihoods(
    lm: nn.Module, cache: DynamicCache, next_logits: torch.Tensor, continuations: list[list[int]]
) -> list[float]:
    """log P(continuation | the text in `cache`) for each continuation (a middle and the suffix's first tokens),
    summed over its tokens.

    `cache` holds the plain text before it (no FIM tokens) and is left as it came; `next_logits` [V] is the
    model's prediction after that text. One forward a continuation.
    """
    past = cache.get_seq_length()
    first = next_logits.float().log_softmax(-1)  # [V]
    scores = []
    for ids in continuations:
        if not ids:
            scores.append(0.0)
            continue
        tokens = torch.tensor([ids], device=next_logits.device)  # [1, T]
        positions = torch.arange(past, past + len(ids), device=next_logits.device)[None]
        logits = lm(input_ids=tokens, position_ids=positions, past_key_values=cache).logits[0, :-1]  # [T - 1, V]
        cache.crop(past - cache.get_seq_length())
        log_probs = torch.cat([first[None], logits.float().log_softmax(-1)])  # [T, V]: row t predicts ids[t]
        scores.append(float(log_probs.gather(1, tokens[0, :, None]).sum()))
    return scores
