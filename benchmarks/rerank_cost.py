"""What reranking's scoring costs: the shared-prefix scorer against one whole forward a candidate, side by side.

    python -m benchmarks.rerank_cost [--suite multi] [--limit 10] [--model blockfill-coder]

The engine reranks each hole as it does by default; every call to engine.rerank.file_log_likelihoods is recorded
(the plain file's cache and the candidates), and each recorded call is then timed twice on the same cache: as the
engine scores (`file_log_likelihoods`: candidates sorted, each forwarding only what follows the prefix it shares
with the one before) and one forward over each whole candidate (the scorer before it). Both must give the same
sums; the ratio of their times is the saving.
"""

import argparse
import statistics
import time

import torch
from transformers.cache_utils import DynamicCache

from benchmarks.quality import DATA, load_tasks
from engine import infill, rerank
from engine.config import parse_assignments, with_overrides
from engine.infill import Engine, InfillRequest


@torch.inference_mode()
def log_distributions(lm, cache: DynamicCache, next_logits: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """log P(next token | the text in `cache`, ids[:t]) for t = 0 .. T from one forward over `ids` [T + 1, V]
    (`next_logits` [V] is the prediction after the cached text); `cache` is left as it came."""
    past = cache.get_seq_length()
    tokens = torch.tensor([ids])  # [1, T]
    positions = torch.arange(past, past + len(ids))[None]
    logits = lm(input_ids=tokens, position_ids=positions, past_key_values=cache).logits[0]  # [T, V]
    cache.crop(past - cache.get_seq_length())
    return torch.cat([next_logits.float().log_softmax(-1)[None], logits.float().log_softmax(-1)])


def token_log_probs(distributions: torch.Tensor, ids: list[int]) -> list[float]:
    """log P(ids[t] | ...) for each t, from `log_distributions` over those ids [T + 1, V]."""
    return distributions[:-1].gather(1, torch.tensor(ids)[:, None])[:, 0].tolist()


def snapshot(cache: DynamicCache, config) -> DynamicCache:
    """A copy of `cache` (its keys and values cloned) that later decoding cannot touch."""
    copy = DynamicCache(config=config)
    for index, layer in enumerate(cache.layers):
        copy.update(layer.keys.clone(), layer.values.clone(), index)
    return copy


def one_forward_each(lm, cache: DynamicCache, next_logits: torch.Tensor, continuations: list[list[int]]) -> list[float]:
    """The baseline: log P(continuation | cache) with one forward over each whole continuation."""
    return [sum(token_log_probs(log_distributions(lm, cache, next_logits, ids), ids)) for ids in continuations]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--suite", choices=("single", "multi"), default="multi")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--model", default="blockfill-coder")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    engine = Engine(with_overrides({"model": args.model, **parse_assignments(args.set)}))
    calls = []
    scorer = rerank.file_log_likelihoods

    def recording(lm, cache, next_logits, continuations):
        scores = scorer(lm, cache, next_logits, continuations)
        # The plain file's keys and values, copied before the engine reuses the cache.
        calls.append((snapshot(cache, lm.config), next_logits.clone(), [list(c) for c in continuations if c]))
        return scores

    infill.file_log_likelihoods = recording  # the engine's own call, recorded
    for task in load_tasks(args.suite, DATA, args.limit):
        engine.complete([InfillRequest(task["prompt"], task["suffix"], "python", force=True)])
    infill.file_log_likelihoods = scorer

    lm, shared_ms, whole_ms, gaps, tokens = engine.loaded.model, [], [], [], []
    for cache, next_logits, continuations in calls:
        began = time.perf_counter()
        fast = scorer(lm, cache, next_logits, continuations)
        shared_ms.append(1000 * (time.perf_counter() - began))
        began = time.perf_counter()
        slow = one_forward_each(lm, cache, next_logits, continuations)
        whole_ms.append(1000 * (time.perf_counter() - began))
        gaps.append(max(abs(a - b) for a, b in zip(fast, slow, strict=True)))
        tokens.append(sum(map(len, continuations)))
    print(
        f"{args.suite}, {len(calls)} holes reranked ({statistics.mean(len(c[2]) for c in calls):.1f} candidates and "
        f"{statistics.mean(tokens):.0f} candidate tokens a hole on average), model {args.model}, "
        f"{torch.get_num_threads()} thread(s):"
    )
    for name, times in (("one forward a whole candidate", whole_ms), ("shared prefixes read once", shared_ms)):
        print(f"  {name:30} {sum(times) / 1000:.1f} s in all, median {statistics.median(times):.0f} ms a hole")
    print(f"  {sum(whole_ms) / sum(shared_ms):.2f}x faster; largest score difference {max(gaps):.4f} nats")


if __name__ == "__main__":
    main()
