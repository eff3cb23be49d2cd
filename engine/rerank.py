"""Choose among a causal model's candidate middles by how likely it finds the file each one makes.

A FIM middle decoded left to right never reads the suffix after the point it writes, and an instruction-tuned
code model infills worse than it continues a file (issue 12's anchor run: 56.0 % of single-line HumanEval holes
with FIM, 60.4 % from the prefix alone). So the causal family gathers candidates from both decodings (the FIM
middle and the plain continuation of the prefix, each cut at every line end, which also lets one line win over a
block where the hole was one line) and scores each by log P(middle + the suffix's first tokens | prefix), read as
the plain file left to right: a middle that makes the code after it likely is one that fits there. Measured in
benchmarks/RESULTS.md.
"""

from collections.abc import Callable

import torch
from torch import nn
from transformers.cache_utils import DynamicCache

from engine.errors import stop_if_asked


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
    lm: nn.Module,
    cache: DynamicCache,
    next_logits: torch.Tensor,
    continuations: list[list[int]],
    should_stop: Callable[[], bool] | None = None,
) -> list[float]:
    """log P(continuation | the text in `cache`) for each continuation (a middle and the suffix's first tokens),
    summed over its tokens.

    `cache` holds the file before it (after the FIM prompt's `<|fim_prefix|>`: engine.infill reads the file's
    head once for both prompts) and is left as it came; `next_logits` [V] is the model's prediction after that
    text. The candidates are mostly cuts of two middles, so they share long token prefixes: taken in sorted
    order, each forwards only what follows the prefix it shares with the one before (whose keys stay cached and
    whose token log-probabilities are kept), instead of one whole forward each.
    `should_stop()` is asked before each forward (raising Cancelled); the cache is left as it came either way.
    """
    past = cache.get_seq_length()
    first = next_logits.float().log_softmax(-1)  # [V]
    scores = [0.0] * len(continuations)
    cached: list[int] = []  # the continuation whose keys follow `past` in the cache
    token_scores: list[float] = []  # log P(cached[t] | text, cached[:t])
    try:
        for index in sorted(range(len(continuations)), key=continuations.__getitem__):
            ids = continuations[index]
            if not ids:
                continue
            stop_if_asked(should_stop, "reranking")
            shared = next(
                (t for t, (a, b) in enumerate(zip(cached, ids, strict=False)) if a != b), min(len(cached), len(ids))
            )
            # The logits that score ids[shared] come from the token before it: re-read that one (or start afresh).
            kept = max(0, shared - 1)
            cache.crop(past + kept - cache.get_seq_length())
            tokens = torch.tensor([ids[kept:]], device=next_logits.device)  # [1, T - kept]
            positions = torch.arange(past + kept, past + len(ids), device=next_logits.device)[None]
            logits = lm(input_ids=tokens, position_ids=positions, past_key_values=cache).logits[0, :-1]  # [T-kept-1, V]
            new = logits.float().log_softmax(-1).gather(1, tokens[0, 1:, None])[:, 0].tolist()  # ids[kept + 1:]
            token_scores = token_scores[: kept + 1] if kept else [float(first[ids[0]])]
            token_scores += new
            cached = ids
            scores[index] = sum(token_scores)
    finally:  # cancelled or not, the cache holds only the text before the continuations again
        cache.crop(past - cache.get_seq_length())
    return scores
