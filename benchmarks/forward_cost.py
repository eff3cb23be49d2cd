"""What a forward of N new tokens costs a causal model over a KV cache, in fp32 and with weight-only int8.

    python -m benchmarks.forward_cost [--model qwen2.5-coder-0.5b] [--threads 1] [--tokens 1,5,9]

Drafting pays only when a forward that settles several tokens costs little more than one: this measures that
ratio on this machine, side by side for fp32 and for torch's own weight-only int8 kernel (`_weight_int8pack_mm`,
per-channel scales on every `nn.Linear`), one after the other in one process.
"""

import argparse
import statistics
import time

import torch
from torch import nn
from transformers.cache_utils import DynamicCache

from engine.models.loading import load_model

PROMPT_TOKENS = 200


class WeightOnlyInt8(nn.Module):
    """`nn.Linear` with int8 weights and fp32 activations (torch's CPU kernel)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach()
        scale = weight.abs().amax(1).clamp(min=1e-8) / 127  # [out]
        self.register_buffer("weight", (weight / scale[:, None]).round().clamp(-128, 127).to(torch.int8))
        self.register_buffer("scale", scale.float())
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch._weight_int8pack_mm(x.reshape(-1, x.shape[-1]), self.weight, self.scale)
        out = out.reshape(*x.shape[:-1], -1)
        return out if self.bias is None else out + self.bias


@torch.inference_mode()
def median_ms(lm: nn.Module, new_tokens: int, runs: int = 5) -> float:
    cache = DynamicCache(config=lm.config)
    lm(input_ids=torch.randint(100, 5000, (1, PROMPT_TOKENS)), past_key_values=cache, logits_to_keep=1)
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        lm(input_ids=torch.full((1, new_tokens), 7), past_key_values=cache)
        times.append(1000 * (time.perf_counter() - began))
        cache.crop(-new_tokens)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", default="1,5,9")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    counts = [int(n) for n in args.tokens.split(",")]
    lm = load_model(args.model, "cpu").model
    fp32 = {n: median_ms(lm, n) for n in counts}
    for module in list(lm.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, WeightOnlyInt8(child))
    int8 = {n: median_ms(lm, n) for n in counts}
    print(f"{args.model}, {args.threads} thread(s), a forward over a {PROMPT_TOKENS}-token cache (median ms):")
    for n in counts:
        print(f"  {n} new: fp32 {fp32[n]:.0f} ({fp32[n] / fp32[counts[0]]:.2f}x), int8 {int8[n]:.0f}")


if __name__ == "__main__":
    main()
